"""Where bytes meet the local disk: the only module that creates, renames or deletes files.

Writing. A save never writes under the final name. Under the directory's
exclusive lock, each file is staged in a new temporary file in the target's
directory (so the final rename stays on one file system), hashed while it is
written, fsynced, and only then moved into place with an atomic rename. If
anything fails before that, the staged files are removed and whatever was
under the final names is left untouched. Every writer holds the lock from its
first staged byte to its last rename, so any staging file found by someone
holding the lock was left by a process that died: cleaning it up cannot race
a live writer.

Reading. Readers take no lock, so a read-only file system or a directory that
can be searched but not listed (mode 0711) is no obstacle. A file is opened
once, without blocking (a FIFO or a device cannot hang the reader), checked on
the open descriptor to be a regular file, and from then on read only through
that descriptor: nothing opens the path a second time, so swapping the file
after it was checked achieves nothing.

Platforms. POSIX: ``fsync`` of each file and of the directory after a rename;
on macOS ``F_FULLFSYNC``, because plain ``fsync`` there does not flush the
drive's cache. Windows: the rename (``MoveFileEx`` with replace) is atomic but
fails while another process has the target open, so it is retried for a few
seconds; a directory cannot be fsynced there, and NTFS journals the rename
itself. Locks are ``flock`` on POSIX and ``LockFileEx`` on Windows, both
through the filelock library, on a hidden ``.nnsave.lock`` in the directory.
"""

from __future__ import annotations

import contextlib
import errno
import io
import mmap
import os
import secrets
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from .errors import (
    DirectoryGivenError,
    FileMissingError,
    LockTimeoutError,
    NotAFileError,
    PathError,
    UnreadableFileError,
)
from .hashing import DEFAULT_ALGORITHM, Digest, StreamHasher, hash_buffer

__all__ = [
    "LOCK_NAME",
    "TEMP_MARKER",
    "HashingWriter",
    "Transaction",
    "transaction",
    "directory_lock",
    "holds_lock",
    "RegularFile",
    "open_regular",
    "read_small_file",
    "is_temporary",
    "stale_temporaries",
    "publish",
    "remove_files",
    "make_directory",
    "create_private_file",
    "writable_by_others",
]

#: The lock file every writer takes in the directory it writes to.
LOCK_NAME = ".nnsave.lock"
#: Every staged file's name contains this, so it can never be taken for an artifact.
TEMP_MARKER = ".nnsave-tmp-"
#: How long a writer waits for another writer in the same directory.
LOCK_TIMEOUT_SECONDS = 600.0
#: Files below this size are read into memory; larger ones are memory-mapped.
MAP_THRESHOLD = 1 << 20

#: A stream hands what it has written so far to the disk (``fdatasync`` in a
#: helper thread) each time this many more bytes have passed, so the device
#: writes while the caller is still serialising. Only the final fsync makes
#: the file durable.
EARLY_SYNC_BYTES = 64 << 20

_WINDOWS = os.name == "nt"
_MACOS = sys.platform == "darwin"
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
_CREATE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
_REPLACE_RETRY_SECONDS = 5.0


# --------------------------------------------------------------------------- platform rules


def fsync_file(descriptor: int) -> None:
    """Make a file's data durable: ``F_FULLFSYNC`` on macOS, ``fsync`` elsewhere."""
    if _MACOS:
        import fcntl

        with contextlib.suppress(OSError):  # some file systems refuse it; fall back
            fcntl.fcntl(descriptor, fcntl.F_FULLFSYNC)
            return
    os.fsync(descriptor)


def fsync_directory(directory: Path) -> None:
    """Make renames in ``directory`` durable (POSIX; Windows journals them itself)."""
    if _WINDOWS:
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fsync_file(descriptor)
    finally:
        os.close(descriptor)


def _replace(staging: Path, target: Path) -> None:
    """Atomically rename ``staging`` over ``target``.

    On Windows the rename fails while another process has ``target`` open,
    for example a reader that is loading it; such a reader is done within
    moments, so the rename is retried for a few seconds.
    """
    deadline = time.monotonic() + _REPLACE_RETRY_SECONDS
    while True:
        try:
            os.replace(staging, target)
            return
        except PermissionError:
            if not _WINDOWS or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --------------------------------------------------------------------------- locks


class _HeldLocks(threading.local):
    """The directory locks this thread holds, with how often each was re-entered."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}


_held = _HeldLocks()


def _lock_key(directory: Path) -> str:
    return os.path.realpath(directory)


@contextlib.contextmanager
def directory_lock(directory: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold the exclusive writers' lock of ``directory``; yield True once held.

    With ``wait=False`` the lock is only tried: if another writer holds it,
    the block runs at once without it, and the context yields False.

    Re-entrant within a thread, because an outer operation (a checkpoint
    callback) calls inner ones (a save) on the same directory. Another thread
    takes its own lock on its own descriptor, so threads of one process
    exclude each other as processes do.

    Raises
    ------
    LockTimeoutError
        Another writer held the lock for :data:`LOCK_TIMEOUT_SECONDS`.
    """
    key = _lock_key(directory)
    counts = _held.counts
    if key in counts:
        counts[key] += 1
        try:
            yield True
        finally:
            counts[key] -= 1
        return
    lock_path = Path(directory) / LOCK_NAME
    lock = filelock.FileLock(str(lock_path), timeout=LOCK_TIMEOUT_SECONDS if wait else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        if not wait:
            yield False
            return
        raise LockTimeoutError(
            f"Another process has been writing in {directory} for over "
            f"{LOCK_TIMEOUT_SECONDS:.0f} s (it holds {lock_path}). Wait for it to "
            "finish, or stop it, then save again.",
            lock_path,
        ) from None
    counts[key] = 1
    try:
        yield True
    finally:
        del counts[key]
        lock.release()


def holds_lock(directory: Path) -> bool:
    """True if this thread holds the writers' lock of ``directory``."""
    return _lock_key(directory) in _held.counts


def _require_lock(directory: Path) -> None:
    if not holds_lock(directory):
        raise RuntimeError(f"nnsave.storage: {directory}'s lock must be held for this")


# --------------------------------------------------------------------------- writing


class HashingWriter(io.RawIOBase):
    """A write-only, forward-only binary stream that hashes what passes through.

    It reports itself as not seekable, so writers such as :mod:`zipfile`
    produce their output strictly in order and the running digest equals the
    digest of the finished file.

    ``raw`` is a local file (whose bytes are flushed to the disk early, see
    :data:`EARLY_SYNC_BYTES`) or, with ``early_sync=False``, any binary
    stream: an upload, a caller's file object. ``progress``, if given, is
    called with the size of each write.
    """

    def __init__(
        self,
        raw: Any,
        algorithms: Iterable[str],
        display_name: str,
        *,
        early_sync: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._hasher = StreamHasher(algorithms)
        self._display_name = display_name
        self._early_sync = early_sync
        self._progress = progress
        self._unsynced = 0
        self._background: _BackgroundSync | None = None

    @property
    def name(self) -> str:
        # Keras puts its temporary weights file for models too large for
        # memory beside the stream's name; here that is the staging file.
        return self._display_name

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        pending = self._hasher.update(data, view)
        written = 0
        while written < len(view):
            count = self._raw.write(view[written:])
            # Some file objects return None from write(); they took everything.
            written = len(view) if count is None else written + count
        if pending is not None:
            pending.result()
        if self._progress is not None:
            self._progress(len(view))
        self._unsynced += len(view)
        if self._early_sync and self._unsynced >= EARLY_SYNC_BYTES:
            self._sync_in_background()
        return len(view)

    def _sync_in_background(self) -> None:
        if self._background is not None:
            if self._background.is_alive():
                return  # one at a time; a later write tries again
            self.finish_background_sync()
        self._unsynced = 0
        self._background = _BackgroundSync(self._raw.fileno())

    def finish_background_sync(self, *, raise_error: bool = True) -> None:
        """Wait for the background flush, if one runs; raise the error it met.

        An error must not be dropped, because after a failed flush the kernel
        may report the next fsync as a success.
        """
        background, self._background = self._background, None
        if background is not None:
            background.join()
            if background.error is not None and raise_error:
                raise background.error

    def tell(self) -> int:
        return self._hasher.size

    def close(self) -> None:
        self._hasher.close()
        super().close()

    @property
    def digest(self) -> Digest:
        return self._hasher.digest()


class _BackgroundSync(threading.Thread):
    """``fdatasync`` of one descriptor in a helper thread, keeping any error."""

    def __init__(self, descriptor: int) -> None:
        super().__init__(name="nnsave-early-sync", daemon=True)
        self._descriptor = descriptor
        self.error: OSError | None = None
        self.start()

    def run(self) -> None:
        try:
            getattr(os, "fdatasync", os.fsync)(self._descriptor)
        except OSError as error:
            self.error = error


@dataclass
class _Staged:
    target: Path
    staging: Path
    descriptor: int
    digest: Digest | None = None
    #: The fsync started as soon as the file was complete; commit waits for it.
    synced: Future[None] | None = None


class Transaction:
    """Stage files in one directory, then publish all of them or none.

    Use it through :func:`transaction`, which holds the directory's lock for
    the transaction's whole life. Files are published in the order they were
    staged, so stage the payload before the manifest that describes it.
    """

    def __init__(self, directory: Path, algorithms: Iterable[str]) -> None:
        self.directory = Path(directory)
        self.algorithms = tuple(algorithms)
        self._staged: list[_Staged] = []
        #: True once the first rename has happened: from then on, what failed
        #: was making the new files durable, not keeping the old ones.
        self.published = False
        self._syncer: ThreadPoolExecutor | None = None

    @property
    def targets(self) -> list[Path]:
        return [staged.target for staged in self._staged]

    def _stage(self, target: Path, name_suffix: str = "") -> _Staged:
        target = Path(target)
        if Path(os.path.realpath(target.parent)) != Path(os.path.realpath(self.directory)):
            raise ValueError(f"{target} is not in this transaction's directory {self.directory}")
        staging = target.with_name(f".{target.name}{TEMP_MARKER}{secrets.token_hex(6)}{name_suffix}")
        # Created exclusively and kept open read-write: every byte of the file
        # is written and read back through this descriptor or by the caller
        # under the same lock, never by anyone else.
        descriptor = os.open(staging, _CREATE_FLAGS, 0o666)
        staged = _Staged(target, staging, descriptor)
        self._staged.append(staged)
        return staged

    @contextlib.contextmanager
    def stream(self, target: Path) -> Iterator[HashingWriter]:
        """Yield a hashing stream whose bytes will become ``target``."""
        staged = self._stage(target)
        raw = io.FileIO(staged.descriptor, "wb", closefd=False)
        with contextlib.closing(HashingWriter(raw, self.algorithms, str(staged.staging))) as writer:
            try:
                yield writer
            except BaseException:
                writer.finish_background_sync(raise_error=False)
                raise
            writer.finish_background_sync()
            self._start_fsync(staged)
            staged.digest = writer.digest

    def staging_path(self, target: Path) -> Path:
        """Reserve a staging path for a writer that insists on a file name.

        The staging name keeps the target's suffix, because some libraries
        (Keras among them) check it. The writer must write the file in place;
        it is hashed through nnsave's own descriptor in :meth:`commit`.
        """
        return self._stage(target, Path(target).suffix).staging

    def write_bytes(self, target: Path, data: bytes) -> Digest:
        """Stage ``data`` as the future content of ``target``."""
        with self.stream(target) as writer:
            writer.write(data)
        return writer.digest

    def digest_of(self, target: Path) -> Digest:
        """The digest of what has been staged for ``target``."""
        for staged in self._staged:
            if staged.target == Path(target):
                if staged.digest is None:
                    staged.digest = _fsync_and_hash(staged.descriptor, self.algorithms)
                return staged.digest
        raise KeyError(target)

    def _start_fsync(self, staged: _Staged) -> None:
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nnsave-fsync")
        staged.synced = self._syncer.submit(fsync_file, staged.descriptor)

    def commit(self) -> None:
        for staged in self._staged:
            if staged.digest is None:
                staged.digest = _fsync_and_hash(staged.descriptor, self.algorithms)
            elif staged.synced is not None:
                staged.synced.result()
        for staged in self._staged:
            _replace(staged.staging, staged.target)
            self.published = True
        fsync_directory(self.directory)
        self._release()

    def abort(self) -> None:
        for staged in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged.staging)
        self._release()

    def _release(self) -> None:
        if self._syncer is not None:
            # Wait for any fsync still running before its descriptor closes.
            self._syncer.shutdown(wait=True)
            self._syncer = None
        for staged in self._staged:
            with contextlib.suppress(OSError):
                os.close(staged.descriptor)


@contextlib.contextmanager
def transaction(directory: Path, algorithms: Iterable[str] = (DEFAULT_ALGORITHM,)) -> Iterator[Transaction]:
    """Group staged writes in ``directory``; publish them on success, remove them on failure.

    The directory's writers' lock is held throughout. A full disk is reported
    as an :class:`OSError` that names the files being written and says
    whether the previous version is unchanged.
    """
    with directory_lock(directory):
        pending = Transaction(directory, algorithms)
        try:
            yield pending
            pending.commit()
        except BaseException as error:
            pending.abort()
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(error, pending) from error
            raise


def _disk_full(error: OSError, pending: Transaction) -> OSError:
    targets = ", ".join(str(target) for target in pending.targets)
    if pending.published:
        outcome = (
            "The new files are already in place and complete, but the renames may not "
            "have reached the disk yet. Free some space; nothing needs to be saved again."
        )
    else:
        outcome = "Nothing was replaced: the previous file, if any, is unchanged. Free some space and save again."
    return OSError(error.errno, f"No space left on the device while saving {targets}. {outcome}")


def _fsync_and_hash(descriptor: int, algorithms: Iterable[str]) -> Digest:
    # fsync waits on the device, hashing on the CPU, and both release the GIL:
    # side by side they take about as long as the slower one, not the sum.
    with ThreadPoolExecutor(max_workers=1) as flusher:
        flushed = flusher.submit(fsync_file, descriptor)
        size = os.fstat(descriptor).st_size
        digest = hash_buffer(_read_exactly(descriptor, size), algorithms)
        flushed.result()
    return digest


# --------------------------------------------------------------------------- reading


def writable_by_others(status: os.stat_result) -> bool:
    """True if someone other than this user (or root) could change the file in place."""
    if _WINDOWS:
        return True  # no owner in os.stat; treat every file as shared
    if status.st_uid not in (os.geteuid(), 0):
        return True
    return bool(status.st_mode & (stat.S_IWGRP | stat.S_IWOTH))


class RegularFile:
    """A regular file opened once for reading; everything is read through this descriptor."""

    def __init__(self, path: Path, descriptor: int, status: os.stat_result) -> None:
        self.path = path
        self.descriptor = descriptor
        self.status = status
        self._mapping: mmap.mmap | None = None

    @property
    def size(self) -> int:
        return self.status.st_size

    @property
    def others_can_write(self) -> bool:
        """True if someone other than this user could change the file in place."""
        return writable_by_others(self.status)

    def head(self, count: int) -> bytes:
        """The first ``count`` bytes (fewer if the file is shorter)."""
        return bytes(_read_exactly(self.descriptor, min(count, self.size)))

    def read_all(self, limit: int | None = None) -> bytes:
        """Every byte of the file, refusing more than ``limit``.

        Raises ``ValueError`` if the file is larger than ``limit``.
        """
        if limit is not None and self.size > limit:
            raise ValueError(f"{self.path} is {self.size} bytes, more than the {limit} expected")
        return bytes(_read_exactly(self.descriptor, self.size))

    def contents(self) -> memoryview:
        """A read-only view of every byte, for hashing and for loading alike.

        Files that someone other than this user could change in place, and
        small files, are copied into private memory: a change after the hash
        cannot reach the copy. Large files of this user's own are mapped
        instead, which costs no copy; nobody else can write them.
        """
        if self.size < MAP_THRESHOLD or writable_by_others(self.status):
            return memoryview(_read_exactly(self.descriptor, self.size)).toreadonly()
        try:
            self._mapping = mmap.mmap(self.descriptor, self.size, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # a file system that cannot map: copy instead
            return memoryview(_read_exactly(self.descriptor, self.size)).toreadonly()
        return memoryview(self._mapping)

    def descriptor_path(self) -> str | None:
        """A name that opens this very file again, not whatever the path names now.

        ``/proc/self/fd/N`` on Linux and ``/dev/fd/N`` on macOS; None where
        neither exists. Libraries that insist on a file name for
        memory-mapping (``numpy.memmap``) get this one.
        """
        for candidate in (f"/proc/self/fd/{self.descriptor}", f"/dev/fd/{self.descriptor}"):
            if os.path.exists(candidate):
                return candidate
        return None

    def changed_since_opened(self) -> bool:
        """True if the path now names another file, or this one changed size or times."""
        try:
            now = os.stat(self.path)
        except OSError:
            return True
        return _identity(now) != _identity(self.status) or now.st_mtime_ns != self.status.st_mtime_ns

    def close(self) -> None:
        if self._mapping is not None:
            with contextlib.suppress(BufferError):  # views still alive: the GC closes it later
                self._mapping.close()
            self._mapping = None
        with contextlib.suppress(OSError):
            os.close(self.descriptor)

    def __enter__(self) -> RegularFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _identity(status: os.stat_result) -> tuple[int, int, int]:
    return status.st_dev, status.st_ino, status.st_size


def open_regular(path: Path) -> RegularFile:
    """Open ``path`` for reading, once, refusing anything but a regular file.

    The open does not block: a FIFO opens at once and is then refused, as is
    a device, a socket or a directory.

    Raises
    ------
    FileMissingError
        Nothing is there.
    DirectoryGivenError
        It is a directory.
    NotAFileError
        It is a FIFO, a device or a socket.
    UnreadableFileError
        Permission was denied.
    """
    path = Path(path)
    try:
        descriptor = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise FileMissingError(f"No such file: {path}. Check the path and the current directory.", str(path)) from None
    except IsADirectoryError:  # Windows cannot open a directory at all
        raise _directory_given(path) from None
    except PermissionError as error:
        if os.path.isdir(path):
            raise _directory_given(path) from None
        raise UnreadableFileError(
            f"Cannot read {path}: permission denied ({error.strerror}). Ask its owner "
            "to make it readable, or copy it somewhere you can read.",
            str(path),
        ) from None
    except OSError as error:
        raise PathError(f"Cannot open {path}: {error.strerror or error}.", str(path)) from None
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise _directory_given(path)
        if not stat.S_ISREG(status.st_mode):
            raise NotAFileError(
                f"{path} is a {_kind(status.st_mode)}, not a regular file. nnsave reads "
                "only regular files; give the path of the saved file itself.",
                str(path),
            )
        if hasattr(os, "set_blocking"):
            os.set_blocking(descriptor, True)
    except BaseException:
        os.close(descriptor)
        raise
    return RegularFile(path, descriptor, status)


def _directory_given(path: Path) -> DirectoryGivenError:
    return DirectoryGivenError(
        f"{path} is a directory, but a saved file was expected. Give the file's "
        "path; for a checkpoint directory use nnsave.latest_checkpoint(directory).",
        str(path),
    )


def _kind(mode: int) -> str:
    kinds = [
        (stat.S_ISFIFO, "FIFO (named pipe)"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ]
    return next((name for test, name in kinds if test(mode)), "special file")


def read_small_file(path: Path, limit: int) -> bytes:
    """Open ``path`` once and read it whole, refusing more than ``limit`` bytes.

    Raises the errors of :func:`open_regular`, and ``ValueError`` if the file
    is larger than ``limit``.
    """
    with open_regular(path) as handle:
        return handle.read_all(limit)


def _read_exactly(descriptor: int, size: int) -> bytearray:
    """``size`` bytes from offset 0 of ``descriptor``, without moving its offset."""
    buffer = bytearray(size)
    view = memoryview(buffer)
    done = 0
    while done < size:
        if hasattr(os, "preadv"):
            count = os.preadv(descriptor, [view[done:]], done)
        else:  # Windows: no pread; the descriptor is ours alone, so seek and read
            os.lseek(descriptor, done, os.SEEK_SET)
            chunk = os.read(descriptor, size - done)
            view[done : done + len(chunk)] = chunk
            count = len(chunk)
        if count == 0:
            # The file shrank after it was opened: keep what is there, and
            # let the digest comparison report the difference.
            del view
            return buffer[:done]
        done += count
    return buffer


# --------------------------------------------------------------------------- housekeeping


def is_temporary(path: Path) -> bool:
    """True for the staging files this module creates."""
    return TEMP_MARKER in Path(path).name


def stale_temporaries(directory: Path) -> list[tuple[Path, Path]]:
    """Staging files in ``directory`` left by writers that died.

    Only meaningful while holding the directory's lock: every live writer
    holds it for as long as its staging files exist, so any found now is
    stale. Returns ``(staging file, the target it was meant to become)``.
    """
    _require_lock(directory)
    stale = []
    for entry in sorted(Path(directory).iterdir()):
        if is_temporary(entry) and entry.name.startswith(".") and stat.S_ISREG(entry.lstat().st_mode):
            target_name = entry.name[1:].split(TEMP_MARKER)[0]
            stale.append((entry, entry.with_name(target_name)))
    return stale


def publish(staging: Path, target: Path) -> None:
    """Move a complete staging file into place (rolling a torn save forward)."""
    _require_lock(Path(target).parent)
    with open_regular(staging) as handle:
        fsync_file(handle.descriptor)
    _replace(staging, target)
    fsync_directory(Path(target).parent)


def remove_files(paths: Iterable[Path]) -> None:
    """Delete files, in order, under their directory's lock; missing ones are fine.

    Callers list a payload before its manifest: should the process die in
    between, what remains is a manifest with nothing to describe, which no
    reader mistakes for a file.
    """
    touched = []
    for path in paths:
        path = Path(path)
        _require_lock(path.parent)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        touched.append(path.parent)
    for directory in dict.fromkeys(touched):
        fsync_directory(directory)


def make_directory(path: Path, *, mode: int = 0o777) -> Path:
    """Create ``path`` and its parents if they are missing; return it.

    A directory created here gets ``mode`` (less the umask); its parents, and
    a directory that already exists, keep theirs.
    """
    path = Path(path)
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    return path


def create_private_file(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data``, readable and writable by this user only.

    The file appears complete or not at all, and an existing file is never
    replaced: of two processes creating it at once, one wins and the other
    returns False and should read the winner's file.
    """
    path = Path(path)
    make_directory(path.parent, mode=0o700)
    staging = path.with_name(f".{path.name}{TEMP_MARKER}{secrets.token_hex(6)}")
    descriptor = os.open(staging, _CREATE_FLAGS, 0o600)
    try:
        os.write(descriptor, data)
        fsync_file(descriptor)
    finally:
        os.close(descriptor)
    try:
        if _WINDOWS:
            os.rename(staging, path)  # fails if path exists: never replaces
        else:
            os.link(staging, path)  # likewise
            os.unlink(staging)
    except FileExistsError:
        os.unlink(staging)
        return False
    fsync_directory(path.parent)
    return True
