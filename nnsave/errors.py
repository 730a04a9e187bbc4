"""Exceptions and warnings raised by nnsave.

Every error names the file it is about and says what the caller can do next.
Each one also subclasses the builtin exception that the wrapped library raises
for the same condition, so code written against Keras, joblib or the
standard library (``except ValueError``, ``except FileNotFoundError``) keeps
working when it calls nnsave instead.
"""

from __future__ import annotations

import contextlib
import enum
import sys
import threading
import warnings
from collections.abc import Iterator

__all__ = [
    "NNSaveError",
    "IntegrityError",
    "Problem",
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
    "CheckpointFallbackWarning",
    "warn_caller",
    "deferred_warnings",
]


class NNSaveError(Exception):
    """Base class of every error nnsave raises on purpose."""


class Problem(enum.Enum):
    """Why a payload does not match its manifest."""

    #: The payload is shorter than the manifest says, cut off while copying or saving.
    TRUNCATED = "truncated"
    #: The payload is longer than the manifest says.
    EXTENDED = "extended"
    #: The payload has the right size but other bytes, damaged or edited.
    CHANGED = "changed"
    #: The payload was written after its manifest, by something other than nnsave.
    STALE_MANIFEST = "stale manifest"
    #: The manifest describes a file of another format.
    OTHER_FORMAT = "other format"
    #: The manifest itself cannot be read.
    DAMAGED_MANIFEST = "damaged manifest"


class IntegrityError(NNSaveError, ValueError):
    """The payload does not match its manifest, or the manifest is damaged.

    Attributes
    ----------
    problem : Problem or None
        What kind of mismatch was found, when there is one.
    """

    def __init__(self, message: str, problem: Problem | None = None) -> None:
        super().__init__(message)
        self.problem = problem


class UntrustedFileError(NNSaveError, ValueError):
    """Loading the file could run code or reach outside it, and nobody vouched for it.

    Keras raises ``ValueError`` when safe mode refuses a file; so does this.
    """


class FormatError(NNSaveError, ValueError):
    """The suffix is unknown, does not fit the object, or the bytes are not of that format."""


class UnknownClassError(FormatError, TypeError, AttributeError):
    """The file names a class this process cannot find.

    Keras raises ``TypeError`` for it and pickle ``AttributeError``; this is both.
    """


class UnsupportedObjectError(NNSaveError, TypeError):
    """No format can hold this object, or the chosen format cannot hold all of it."""


class InvalidArgumentError(NNSaveError, ValueError, TypeError):
    """An argument has a value or type that does not apply to this file or format.

    It is both a ``ValueError`` and a ``TypeError``, so code that caught either
    from the library nnsave wraps keeps working.
    """


class MissingDependencyError(NNSaveError, ModuleNotFoundError):
    """A library that this format needs is not installed; the message names the extra."""


class _NamedOSError(OSError):
    """An OSError whose text is the whole message, with the file kept in ``filename``."""

    def __init__(self, message: str, filename: object = None) -> None:
        super().__init__(message)
        self.filename = filename

    def __str__(self) -> str:
        # OSError would print "[Errno None] None: 'path'" once filename is set.
        return str(self.args[0]) if self.args else ""


class PathError(NNSaveError, _NamedOSError):
    """The path does not name a regular file that nnsave can use."""


class FileMissingError(PathError, FileNotFoundError):
    """The file, or the directory it should be in, does not exist."""


class NotAFileError(PathError):
    """The path names something other than a regular file: a FIFO, a device, a socket."""


class DirectoryGivenError(NotAFileError, IsADirectoryError):
    """The path names a directory where a file was expected."""


class TargetExistsError(PathError, FileExistsError):
    """The target exists and ``overwrite=False`` was given."""


class UnwritableError(PathError, PermissionError):
    """The target's directory cannot be written (permissions, or a read-only file system)."""


class UnreadableFileError(PathError, PermissionError):
    """The file exists, but this user may not read it."""


class LockTimeoutError(NNSaveError, _NamedOSError, TimeoutError):
    """Another writer held the directory's lock for too long."""


class KeyFileError(NNSaveError, PermissionError):
    """The signing key file is unsafe (others can read or own it) or unreadable."""


class VersionMismatchWarning(UserWarning):
    """The file was written with library versions that differ from the installed ones."""


class UnverifiedFileWarning(UserWarning):
    """The file was loaded without an integrity check (it has no manifest)."""


class UnportableObjectWarning(UserWarning):
    """The saved object refers to code that another process cannot import (``__main__``)."""


class CheckpointFallbackWarning(UserWarning):
    """A checkpoint directory was torn, and an older or unindexed checkpoint was used.

    Also given when a save deletes the checkpoints of a run that went further,
    and when a checkpoint is skipped because it is not signed with the key
    that was named.
    """


# Frames of these packages are never "the caller": a Checkpointer's warning is
# raised from inside Keras's fit loop, and the line to show is the fit call.
_LIBRARY_PACKAGES = ("nnsave", "keras", "tensorflow")


class _DeferredWarnings(threading.local):
    """Per thread: the list that collects :func:`warn_caller`'s warnings, if one does."""

    def __init__(self) -> None:
        self.collected: list[tuple[str, type[Warning]]] | None = None


_deferred = _DeferredWarnings()


@contextlib.contextmanager
def deferred_warnings() -> Iterator[list[tuple[str, type[Warning]]]]:
    """Collect this thread's :func:`warn_caller` warnings instead of giving them.

    A background thread has no caller's line to point at: it collects its
    warnings, and the thread that waits for it gives them with
    :func:`warn_caller`, which then points at that thread's caller.
    """
    collected: list[tuple[str, type[Warning]]] = []
    previous, _deferred.collected = _deferred.collected, collected
    try:
        yield collected
    finally:
        _deferred.collected = previous


def warn_caller(message: str, category: type[Warning]) -> None:
    """Warn at the first frame outside nnsave, Keras and TensorFlow: the caller's own line.

    A fixed ``stacklevel`` cannot do this: the same warning is reached from
    the caller's ``load`` call directly, from ``resume`` through a few nnsave
    frames, and from ``fit`` through dozens of Keras frames. Inside
    :func:`deferred_warnings`, the warning is collected instead.
    """
    if _deferred.collected is not None:
        _deferred.collected.append((message, category))
        return
    frame = sys._getframe(1)
    level = 2  # warnings.warn counts this function as level 1
    while frame is not None and frame.f_globals.get("__name__", "").split(".", 1)[0] in _LIBRARY_PACKAGES:
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
