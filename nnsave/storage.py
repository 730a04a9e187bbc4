"""Atomic, hashed file IO: the only module that creates, renames or deletes files.

A save never writes under the final name. Each file is staged in a temporary
file in the target's directory (so the final rename stays on one file system),
hashed while it is written, flushed and fsynced, and only then moved into
place with :func:`os.replace`. If anything fails before that, the staged
files are removed and whatever was under the final names is left untouched.

Format handlers see only a writable binary stream or a staging path, never the
final name, so another backend (an object store, say) can replace this module
without touching them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .manifest import manifest_path

__all__ = [
    "TEMP_MARKER",
    "Digest",
    "HashingWriter",
    "AtomicWrite",
    "atomic_write",
    "hash_file",
    "read_small_file",
    "is_temporary",
    "make_directory",
    "remove_artifact",
    "stale_temporaries",
    "publish",
    "remove_temporary",
    "directory_lock",
]

#: Every staged file's name contains this, so it can never be taken for an artifact.
TEMP_MARKER = ".nnsave-tmp-"

_CHUNK_SIZE = 1 << 20

#: A stream hands what it has written so far to the disk (``fdatasync`` in a
#: helper thread) each time this many more bytes have passed, so the device
#: writes while the caller is still pickling, and the final fsync has little
#: left to wait for. Only the final fsync makes the file durable.
EARLY_SYNC_BYTES = 64 << 20


@dataclass(frozen=True)
class Digest:
    """The sha256 and size of a file's bytes."""

    sha256: str
    size: int


class HashingWriter(io.RawIOBase):
    """A write-only, forward-only binary stream that hashes what passes through.

    It reports itself as not seekable, so writers such as :mod:`zipfile`
    produce their output strictly in order and the running hash equals the
    hash of the finished file.
    """

    def __init__(self, raw: io.BufferedWriter) -> None:
        super().__init__()
        self._raw = raw
        self._sha256 = hashlib.sha256()
        self._size = 0
        self._unsynced = 0
        self._background: _BackgroundSync | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        self._raw.write(view)
        self._sha256.update(view)
        self._size += len(view)
        self._unsynced += len(view)
        if self._unsynced >= EARLY_SYNC_BYTES:
            self._sync_in_background()
        return len(view)

    def _sync_in_background(self) -> None:
        if self._background is not None:
            if self._background.is_alive():
                return  # one at a time; a later write tries again
            self.finish_background_sync()
        self._raw.flush()
        self._unsynced = 0
        self._background = _BackgroundSync(self._raw.fileno())

    def finish_background_sync(self, *, raise_error: bool = True) -> None:
        """Wait for the background flush, if one runs; raise the error it met.

        Call it before the underlying file is closed: the flush uses its
        descriptor. An error must not be dropped, because after a failed
        flush the kernel may report the next fsync as a success.
        """
        background, self._background = self._background, None
        if background is not None:
            background.join()
            if background.error is not None and raise_error:
                raise background.error

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._raw.flush()

    @property
    def digest(self) -> Digest:
        return Digest(self._sha256.hexdigest(), self._size)


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
class _StagedFile:
    target: Path
    staging: Path
    # Held open with an exclusive flock while the file is staged, so that a
    # cleaner can tell a live writer's file from one a killed process left.
    lock_descriptor: int
    digest: Digest | None = None


class AtomicWrite:
    """Stage files beside their targets, then publish all of them or none.

    Use it through :func:`atomic_write`. Files are published in the order they
    were staged, so stage the payload before the manifest that describes it.
    The renames happen under an exclusive :func:`directory_lock`, so a reader
    holding the shared lock sees either the old pair or the new one.
    """

    def __init__(self) -> None:
        self._staged: list[_StagedFile] = []
        #: True once the first rename has happened: from then on, what failed
        #: was making the new files durable, not keeping the old ones.
        self.published = False

    @property
    def targets(self) -> list[Path]:
        return [staged.target for staged in self._staged]

    def _stage(self, target: Path, name_suffix: str = "") -> _StagedFile:
        target = Path(target)
        staging = target.with_name(f".{target.name}{TEMP_MARKER}{secrets.token_hex(4)}{name_suffix}")
        descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        staged = _StagedFile(target, staging, descriptor)
        self._staged.append(staged)
        return staged

    @contextlib.contextmanager
    def stream(self, target: Path) -> Iterator[HashingWriter]:
        """Yield a hashing stream whose bytes will become ``target``."""
        staged = self._stage(target)
        with open(staged.staging, "wb") as raw:
            writer = HashingWriter(raw)
            try:
                yield writer
            except BaseException:
                writer.finish_background_sync(raise_error=False)
                raise
            writer.finish_background_sync()
            raw.flush()
            os.fsync(raw.fileno())
        staged.digest = writer.digest

    def staging_path(self, target: Path) -> Path:
        """Reserve a staging path for a writer that insists on a file name.

        The staging name keeps the target's suffix, because some libraries
        (Keras among them) check it. The file is hashed in :meth:`commit`.
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
                    staged.digest = _fsync_and_hash(staged.staging)
                return staged.digest
        raise KeyError(target)

    def commit(self) -> None:
        for staged in self._staged:
            if staged.digest is None:
                staged.digest = _fsync_and_hash(staged.staging)
        directories = {staged.target.parent for staged in self._staged}
        with contextlib.ExitStack() as locks:
            for directory in sorted(directories):
                locks.enter_context(directory_lock(directory))
            for staged in self._staged:
                os.replace(staged.staging, staged.target)
                self.published = True
            for directory in directories:
                _fsync_directory(directory)
        self._release()

    def abort(self) -> None:
        for staged in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged.staging)
        self._release()

    def _release(self) -> None:
        for staged in self._staged:
            with contextlib.suppress(OSError):
                os.close(staged.lock_descriptor)


@contextlib.contextmanager
def atomic_write() -> Iterator[AtomicWrite]:
    """Group staged writes; publish them on success, remove them on any failure.

    A full disk is reported as an :class:`OSError` that names the file being
    written and says that the previous version is unchanged.
    """
    transaction = AtomicWrite()
    try:
        yield transaction
        transaction.commit()
    except BaseException as error:
        transaction.abort()
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            targets = ", ".join(str(target) for target in transaction.targets)
            if transaction.published:
                outcome = (
                    "The new files are already in place and complete, but the renames "
                    "may not have reached the disk yet. Free some space; nothing needs "
                    "to be saved again."
                )
            else:
                outcome = (
                    "Nothing was replaced: the previous file, if any, is unchanged. "
                    "Free some space and save again."
                )
            raise OSError(error.errno, f"No space left on the device while saving {targets}. {outcome}") from error
        raise


_held_locks: dict[str, int] = {}


@contextlib.contextmanager
def directory_lock(directory: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an flock on ``directory``: exclusive to publish files, shared to read a pair.

    Re-entrant within a process (an inner request reuses the outer lock),
    because two flocks on one directory from one process would deadlock.
    """
    key = os.path.realpath(directory)
    if key in _held_locks:
        _held_locks[key] += 1
        try:
            yield
        finally:
            _held_locks[key] -= 1
        return
    descriptor = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        _held_locks[key] = 1
        try:
            yield
        finally:
            del _held_locks[key]
    finally:
        os.close(descriptor)


def hash_file(path: Path) -> Digest:
    """Stream ``path`` through sha256 without holding it in memory."""
    sha256 = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK_SIZE)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            sha256.update(view[:count])
            size += count
    return Digest(sha256.hexdigest(), size)


def read_small_file(path: Path, limit: int) -> bytes:
    """Read a file that should be small, refusing to read more than ``limit`` bytes."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path} is larger than {limit} bytes")
    return data


def is_temporary(path: Path) -> bool:
    """True for the staging files this module creates."""
    return TEMP_MARKER in Path(path).name


def make_directory(path: Path) -> Path:
    """Create ``path`` and its parents if they are missing; return it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


def remove_artifact(path: Path) -> None:
    """Delete a saved file and its manifest, if present.

    The payload goes first: should the process die in between, what remains is
    a manifest with nothing to describe, which no reader mistakes for a file.
    """
    path = Path(path)
    with directory_lock(path.parent):
        for victim in (path, manifest_path(path)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(victim)
        _fsync_directory(path.parent)


def stale_temporaries(directory: Path) -> list[tuple[Path, Path]]:
    """Staging files in ``directory`` that no live process is writing.

    Returns ``(staging file, the target it was meant to become)`` pairs. A
    writer holds an exclusive flock on its staging file until it publishes or
    aborts, so a file whose lock can be taken was left by a process that died.
    """
    stale = []
    for entry in sorted(Path(directory).iterdir()):
        if not (is_temporary(entry) and entry.is_file()):
            continue
        try:
            descriptor = os.open(entry, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        finally:
            os.close(descriptor)
        target_name = entry.name[1:].split(TEMP_MARKER)[0]
        stale.append((entry, entry.with_name(target_name)))
    return stale


def publish(staging: Path, target: Path) -> None:
    """Move a complete, fsynced staging file into place (rolling a torn save forward)."""
    with directory_lock(Path(target).parent):
        os.replace(staging, target)
        _fsync_directory(Path(target).parent)


def remove_temporary(staging: Path) -> None:
    """Delete one staging file that :func:`stale_temporaries` reported."""
    if not is_temporary(staging):
        raise ValueError(f"{staging} is not an nnsave staging file")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(staging)


def _fsync_and_hash(path: Path) -> Digest:
    # fsync waits on the device, hashing on the CPU, and both release the GIL:
    # side by side they take about as long as the slower one, not the sum.
    with open(path, "rb+") as handle, ThreadPoolExecutor(max_workers=1) as flusher:
        flushed = flusher.submit(os.fsync, handle.fileno())
        digest = hash_file(path)
        flushed.result()
    return digest


def _fsync_directory(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is on disk.
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
