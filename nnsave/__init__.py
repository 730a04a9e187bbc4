"""nnsave: save and load Keras models and scikit-learn estimators safely.

Every save is atomic and writes a manifest (``<file>.nnsave.json``) with the
payload's sha256 and the library versions; every load checks it first, and a
file whose loading could run code is refused unless it verifies or you vouch
for it. The files stay native: Keras and joblib open them without nnsave.

>>> import nnsave
>>> sorted(nnsave.__all__)[:4]
['ArtifactInfo', 'FormatError', 'IntegrityError', 'NNSaveError']
"""

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
]
