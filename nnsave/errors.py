"""Exceptions and warnings raised by nnsave.

Every error names the file it is about and says what the caller can do next.
"""

from __future__ import annotations

__all__ = [
    "NNSaveError",
    "IntegrityError",
    "UntrustedFileError",
    "FormatError",
    "UnsupportedObjectError",
    "VersionMismatchWarning",
    "UnverifiedFileWarning",
]


class NNSaveError(Exception):
    """Base class of every error nnsave raises on purpose."""


class IntegrityError(NNSaveError):
    """The payload does not match its manifest, or the manifest is damaged."""


class UntrustedFileError(NNSaveError):
    """Loading the file could run code, and the caller has not vouched for it."""


class FormatError(NNSaveError):
    """The suffix is unknown, does not fit the object, or the file is not a model."""


class UnsupportedObjectError(NNSaveError, TypeError):
    """No format handler can save this kind of object."""


class VersionMismatchWarning(UserWarning):
    """The file was written with library versions that differ from the installed ones."""


class UnverifiedFileWarning(UserWarning):
    """The file was loaded without an integrity check (it has no manifest)."""
