"""A checkpoint directory on disk: the one place where the checkpoint package touches files.

Listing, reading, publishing and deleting all go through :class:`CheckpointFolder`,
which passes them on to :mod:`nnsave.storage` and :mod:`nnsave.artifact`, so
that the rules of those modules hold here too: every read opens a file once,
without blocking, and refuses anything but a regular file; every write and
delete happens under the directory's writers' lock; readers take no lock.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import artifact, storage
from ..errors import FileMissingError
from ..paths import PathLike, user_path

__all__ = ["CheckpointFolder", "Identity"]

#: What identifies one version of a file: device, inode, size, and change times.
Identity = tuple[int, int, int, int, int]


class CheckpointFolder:
    """One checkpoint directory.

    Parameters
    ----------
    directory : str, bytes or os.PathLike
        The directory; ``~`` is expanded.
    """

    def __init__(self, directory: PathLike) -> None:
        self.directory = user_path(directory, argument="directory")

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

    def path(self, name: str) -> Path:
        """The path of the entry ``name``, which the caller has confined to this directory."""
        return self.directory / name

    # ------------------------------------------------------------------- reading

    def names(self) -> list[str]:
        """The names in the directory, sorted; empty if it may be searched but not listed."""
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
        return storage.read_small_file(self.path(name), limit)

    def identity(self, name: str) -> Identity | None:
        """What identifies the current version of ``name``; None if it is missing."""
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
        return identity[2] if identity else 0

    def modified_ns(self, name: str) -> int:
        """When ``name`` was last written; 0 if it is missing."""
        identity = self.identity(name)
        return identity[3] if identity else 0

    def exists(self, name: str) -> bool:
        """True if ``name`` is there (whatever kind of file it is)."""
        return self.identity(name) is not None

    # ------------------------------------------------------------------- writing

    def create(self) -> None:
        """Create the directory and its parents if they are missing."""
        storage.make_directory(self.directory)

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the directory's writers' lock: one writer at a time, readers unaffected."""
        with storage.directory_lock(self.directory):
            yield

    def recover(self) -> None:
        """Finish or remove what interrupted saves left behind."""
        with self.writing():
            artifact.recover(self.directory)

    def publish(self, name: str, data: bytes) -> None:
        """Replace ``name`` with ``data`` atomically."""
        with storage.transaction(self.directory) as pending:
            pending.write_bytes(self.path(name), data)

    def remove_checkpoint(self, name: str) -> None:
        """Delete a checkpoint and its manifest, the checkpoint first."""
        artifact.remove_pair(self.path(name))
