"""nnsave: save and load Keras models and scikit-learn estimators safely.

Every save is atomic and writes a signed manifest (``<file>.nnsave.json``)
with the payload's digest and the library versions; every load checks it
first, and a file whose loading could run code is refused unless you vouch
for it (your own files are signed with your key, so they just load). The
files stay native: Keras, joblib and skops open them without nnsave.

:class:`Checkpointer` subclasses a Keras class, and Keras takes seconds to
import, so it is loaded the first time it is used: ``import nnsave`` stays quick.

>>> import nnsave
>>> {"save", "load", "Checkpointer", "resume"} <= set(nnsave.__all__)
True
"""

from typing import TYPE_CHECKING, Any

from . import legacy
from ._version import __version__
from .api import inspect, load, save, verify
from .errors import (
    DirectoryGivenError,
    FileMissingError,
    FormatError,
    IntegrityError,
    InvalidArgumentError,
    KeyFileError,
    LockTimeoutError,
    MissingDependencyError,
    NNSaveError,
    NotAFileError,
    PathError,
    Problem,
    TargetExistsError,
    UnknownClassError,
    UnportableObjectWarning,
    UnreadableFileError,
    UnsupportedObjectError,
    UntrustedFileError,
    UnverifiedFileWarning,
    UnwritableError,
    VersionMismatchWarning,
)
from .keys import SignatureStatus, user_key_path
from .manifest import MANIFEST_SUFFIX
from .report import ArtifactInfo
from .roundtrip import RoundtripReport, roundtrip
from .trust import Integrity
from .reproducibility import epoch_order, seed_everything
from .checkpoint import (
    CheckpointFallbackWarning,
    latest_checkpoint,
    list_checkpoints,
    restore_tf_checkpoint,
    resume,
)

if TYPE_CHECKING:
    from .checkpoint import Checkpointer
    from .reproducibility import ShuffledEpochs

__all__ = [
    "__version__",
    "save",
    "load",
    "inspect",
    "verify",
    "roundtrip",
    "ArtifactInfo",
    "RoundtripReport",
    "Integrity",
    "SignatureStatus",
    "Problem",
    "MANIFEST_SUFFIX",
    "user_key_path",
    "seed_everything",
    "epoch_order",
    "ShuffledEpochs",
    "NNSaveError",
    "IntegrityError",
    "UntrustedFileError",
    "FormatError",
    "UnknownClassError",
    "UnsupportedObjectError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "PathError",
    "FileMissingError",
    "NotAFileError",
    "DirectoryGivenError",
    "TargetExistsError",
    "UnwritableError",
    "UnreadableFileError",
    "LockTimeoutError",
    "KeyFileError",
    "VersionMismatchWarning",
    "UnverifiedFileWarning",
    "UnportableObjectWarning",
    "Checkpointer",
    "CheckpointFallbackWarning",
    "latest_checkpoint",
    "resume",
    "list_checkpoints",
    "restore_tf_checkpoint",
    "legacy",
]


#: Names whose classes subclass a Keras class, so they are built on first use
#: (importing Keras takes seconds), with the module that builds them.
_KERAS_CLASSES = {"Checkpointer": ".checkpoint", "ShuffledEpochs": ".reproducibility"}


def __getattr__(name: str) -> Any:
    if name in _KERAS_CLASSES:
        import importlib

        value = getattr(importlib.import_module(_KERAS_CLASSES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
