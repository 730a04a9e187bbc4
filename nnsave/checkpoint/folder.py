"""A checkpoint directory: the one place where the checkpoint package touches files.

Listing, reading, publishing and deleting all go through :class:`CheckpointFolder`,
which passes them on to :mod:`nnsave.storage` and :mod:`nnsave.artifact`, so
that the rules of those modules hold here too: every read opens a file once,
without blocking, and refuses anything but a regular file; every write and
delete happens under the directory's writers' lock; readers take no lock.

A directory on an object store (``s3://bucket/runs/digits``) goes to
:mod:`nnsave.objectstore` instead. The same steps keep readers safe there:
the index is one object written in one request, checkpoints are written by
the object-store protocol, and readers verify before they trust. What an
object store lacks is a lock: one writer per run directory. Leftovers of a
killed run are removed by age when training starts again.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from collections.abc import Mapping
from typing import Any

from .. import artifact, objectstore, storage
from ..errors import FileMissingError
from ..objectstore import ObjectPath
from ..paths import Location, PathLike, location

__all__ = ["CheckpointFolder", "Identity"]

#: What identifies one version of a file: device, inode, size, and change
#: times; on an object store, size and ETag (or its like).
Identity = tuple[Any, ...]


class CheckpointFolder:
    """One checkpoint directory.

    Parameters
    ----------
    directory : str, bytes, os.PathLike or URL
        The directory; ``~`` is expanded. A URL names a prefix on an object store.
    storage_options : dict, optional
        For a URL: options for fsspec.
    """

    def __init__(self, directory: PathLike, storage_options: Mapping[str, Any] | None = None) -> None:
        self.directory: Location = location(directory, storage_options, argument="directory")
        #: True on an object store.
        self.remote = isinstance(self.directory, ObjectPath)

    def __repr__(self) -> str:
        return f"CheckpointFolder({str(self.directory)!r})"

    def require(self, *, may_be_missing: bool = False) -> CheckpointFolder:
        """Return self if the directory exists (or ``may_be_missing``); raise otherwise.

        Raises
        ------
        nnsave.FileMissingError
            It does not exist, and must.
        NotADirectoryError
            It is a file.
        """
        if isinstance(self.directory, ObjectPath):
            if may_be_missing or objectstore.is_directory(self.directory):
                return self
            raise FileMissingError(
                f"The checkpoint directory {self.directory} holds nothing. Check the URL; "
                "Checkpointer writes there when training starts.",
                str(self.directory),
            )
        if not self.directory.exists():
            if may_be_missing:
                return self
            raise FileMissingError(
                f"The checkpoint directory {self.directory} does not exist. Check the path; "
                "Checkpointer creates it when training starts.",
                str(self.directory),
            )
        if not self.directory.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR,
                f"{self.directory} is a file, not a checkpoint directory. Give a directory; "
                "load a single file with nnsave.load",
                str(self.directory),
            )
        return self

    def path(self, name: str) -> Location:
        """The path of the entry ``name``, which the caller has confined to this directory."""
        return self.directory / name

    # ------------------------------------------------------------------- reading

    def names(self) -> list[str]:
        """The names in the directory, sorted; empty if it may be searched but not listed."""
        if isinstance(self.directory, ObjectPath):
            return objectstore.names(self.directory)
        try:
            return sorted(os.listdir(self.directory))
        except PermissionError:  # mode 0711: files can be opened by name, not listed
            return []

    def read(self, name: str, limit: int) -> bytes:
        """The whole content of the regular file ``name``, at most ``limit`` bytes.

        Raises
        ------
        nnsave.PathError
            It is missing, not a regular file (a FIFO, a device), or unreadable.
        ValueError
            It is larger than ``limit``.
        """
        path = self.path(name)
        if isinstance(path, ObjectPath):
            return objectstore.read_small(path, limit)
        return storage.read_small_file(path, limit)

    def identity(self, name: str) -> Identity | None:
        """What identifies the current version of ``name``; None if it is missing."""
        path = self.path(name)
        if isinstance(path, ObjectPath):
            return objectstore.identity(path)
        try:
            status = os.stat(self.path(name))
        except (OSError, ValueError):
            return None
        return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns

    def fingerprint(self, names: Iterable[str]) -> tuple[tuple[str, Identity | None], ...]:
        """The identities of ``names``: equal fingerprints mean nothing among them changed."""
        return tuple((name, self.identity(name)) for name in sorted(set(names)))

    def size(self, name: str) -> int:
        """Bytes on disk of ``name``; 0 if it is missing."""
        identity = self.identity(name)
        if identity and self.remote:
            return int(identity[0] or 0)
        return identity[2] if identity else 0

    def modified_ns(self, name: str) -> int:
        """When ``name`` was last written; 0 if it is missing (or on an object store)."""
        identity = self.identity(name)
        return identity[3] if identity and not self.remote else 0

    def exists(self, name: str) -> bool:
        """True if ``name`` is there (whatever kind of file it is)."""
        return self.identity(name) is not None

    # ------------------------------------------------------------------- writing

    def create(self) -> None:
        """Create the directory and its parents if they are missing."""
        if isinstance(self.directory, ObjectPath):
            objectstore.make_directory(self.directory)
        else:
            storage.make_directory(self.directory)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the directory's writers' lock: one writer at a time, readers unaffected.

        An object store has no lock: there, one writer per directory is the rule.
        """
        if isinstance(self.directory, ObjectPath):
            yield
            return
        with storage.directory_lock(self.directory):
            yield

    def recover(self) -> None:
        """Finish or remove what interrupted saves left behind (on an object store, what is old)."""
        with self.writing():
            artifact.recover(self.directory)

    def publish(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data`` atomically."""
        path = self.path(name)
        if isinstance(path, ObjectPath):
            objectstore.put_bytes(path, data)
            return
        with storage.transaction(self.directory) as pending:
            pending.write_bytes(self.path(name), data)

    def remove_checkpoint(self, name: str) -> None:
        """Delete a checkpoint and its manifest, the checkpoint first."""
        artifact.remove_pair(self.path(name))
