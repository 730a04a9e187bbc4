"""nnsave: save and load Keras models and scikit-learn estimators safely.

Every save is atomic and writes a manifest (``<file>.nnsave.json``) with the
payload's sha256 and the library versions; every load checks it first, and a
file whose loading could run code is refused unless it verifies or you vouch
for it. The files stay native: Keras and joblib open them without nnsave.

:class:`Checkpointer` subclasses a Keras class, and Keras takes seconds to
import, so it is loaded the first time it is used: ``import nnsave`` stays quick.

>>> import nnsave
>>> {"save", "load", "Checkpointer", "resume"} <= set(nnsave.__all__)
True
"""

from typing import TYPE_CHECKING, Any

from . import legacy
from ._version import __version__
from .api import ArtifactInfo, RoundtripReport, inspect, load, roundtrip, save, verify
from .errors import (
    FormatError,
    IntegrityError,
    NNSaveError,
    UnsupportedObjectError,
    UntrustedFileError,
    UnverifiedFileWarning,
    VersionMismatchWarning,
)
from .manifest import MANIFEST_SUFFIX
from .reproducibility import seed_everything
from .checkpoint import (
    CheckpointFallbackWarning,
    latest_checkpoint,
    list_checkpoints,
    restore_tf_checkpoint,
    resume,
)

if TYPE_CHECKING:
    from .checkpoint import Checkpointer

__all__ = [
    "__version__",
    "save",
    "load",
    "inspect",
    "verify",
    "roundtrip",
    "ArtifactInfo",
    "RoundtripReport",
    "MANIFEST_SUFFIX",
    "seed_everything",
    "NNSaveError",
    "IntegrityError",
    "UntrustedFileError",
    "FormatError",
    "UnsupportedObjectError",
    "VersionMismatchWarning",
    "UnverifiedFileWarning",
    "Checkpointer",
    "CheckpointFallbackWarning",
    "latest_checkpoint",
    "resume",
    "list_checkpoints",
    "restore_tf_checkpoint",
    "legacy",
]


def __getattr__(name: str) -> Any:
    # Only Checkpointer is lazy: it subclasses keras.callbacks.Callback.
    if name == "Checkpointer":
        from .checkpoint import Checkpointer

        globals()[name] = Checkpointer
        return Checkpointer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
