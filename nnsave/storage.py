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

import collections
import contextlib
import errno
import fcntl
import hashlib
import io
import os
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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
    hash of the finished file. Large writes are hashed by a helper thread
    while the caller's thread copies the same bytes into the file, so a save
    costs about the slower of the two rather than their sum.
    """

    def __init__(self, raw: io.BufferedWriter) -> None:
        super().__init__()
        self._raw = raw
        self._hasher = _PipelinedHash()
        self._size = 0
        self._unsynced = 0
        self._background: _BackgroundSync | None = None

    @property
    def name(self) -> str:
        # Keras puts its temporary weights file for models too large for
        # memory beside the stream's name; here that is the staging file.
        return self._raw.name

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        pending = self._hasher.update(data, view)
        self._raw.write(view)
        if pending is not None:
            pending.result()
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

    def close(self) -> None:
        self._hasher.close()
        super().close()

    @property
    def digest(self) -> Digest:
        return Digest(self._hasher.hexdigest(), self._size)


class _PipelinedHash:
    """sha256 of a stream, computed in order by one helper thread.

    hashlib releases the GIL on large buffers, so the helper hashes one
    chunk while the writer's thread stores it. Immutable ``bytes`` are
    hashed without waiting; any other buffer may be reused by its owner as
    soon as ``write`` returns, so the writer waits for that chunk's hash.
    Small writes are gathered first: handing each to a thread costs more
    than hashing it.
    """

    _GATHER_BYTES = 1 << 20
    #: Chunks that may wait to be hashed; bounds the memory they keep alive.
    _QUEUE_DEPTH = 4

    def __init__(self) -> None:
        self._sha256 = hashlib.sha256()
        self._gathered = bytearray()
        self._executor: ThreadPoolExecutor | None = None
        self._queued: collections.deque[Future[None]] = collections.deque()

    def update(self, data: object, view: memoryview) -> Future[None] | None:
        """Queue ``view`` for hashing; return a future to wait on before ``view`` may change."""
        if len(view) < self._GATHER_BYTES:
            self._gathered += view
            if len(self._gathered) >= self._GATHER_BYTES:
                self._submit(bytes(self._gathered))
                self._gathered.clear()
            return None
        if self._gathered:
            self._submit(bytes(self._gathered))
            self._gathered.clear()
        queued = self._submit(view)
        return None if isinstance(data, bytes) else queued

    def _submit(self, chunk: bytes | memoryview) -> Future[None]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nnsave-hash")
        while len(self._queued) >= self._QUEUE_DEPTH:
            self._queued.popleft().result()
        queued = self._executor.submit(self._sha256.update, chunk)
        self._queued.append(queued)
        return queued

    def hexdigest(self) -> str:
        while self._queued:
            self._queued.popleft().result()
        if self._gathered:
            self._sha256.update(self._gathered)
            self._gathered.clear()
        return self._sha256.hexdigest()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        self._queued.clear()


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
    #: The fsync started as soon as the file was complete; commit waits for it.
    synced: Future[None] | None = None


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
        # Each finished file is fsynced in the background, so that the device
        # works while the caller builds and stages the next file (the manifest).
        self._syncer: ThreadPoolExecutor | None = None

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
        with open(staged.staging, "wb") as raw, contextlib.closing(HashingWriter(raw)) as writer:
            try:
                yield writer
            except BaseException:
                writer.finish_background_sync(raise_error=False)
                raise
            writer.finish_background_sync()
            raw.flush()
            # The helper thread finishes hashing while the device syncs.
            self._start_fsync(staged)
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

    def _start_fsync(self, staged: _StagedFile) -> None:
        if self._syncer is None:
            self._syncer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="nnsave-fsync")
        # Any descriptor of the file will do: fsync flushes the file, not the descriptor.
        staged.synced = self._syncer.submit(os.fsync, staged.lock_descriptor)

    def commit(self) -> None:
        for staged in self._staged:
            if staged.digest is None:
                staged.digest = _fsync_and_hash(staged.staging)
            elif staged.synced is not None:
                staged.synced.result()
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
        if self._syncer is not None:
            # Wait for any fsync still running before its descriptor closes.
            self._syncer.shutdown(wait=True)
            self._syncer = None
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


class _HeldLocks(threading.local):
    """The directory locks this thread holds, with how often each was re-entered."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}


_held_locks = _HeldLocks()


@contextlib.contextmanager
def directory_lock(directory: Path, *, shared: bool = False) -> Iterator[None]:
    """Hold an flock on ``directory``: exclusive to publish files, shared to read a pair.

    Re-entrant within a thread (an inner request reuses the outer lock),
    because two flocks on one directory from one thread would deadlock.
    Another thread takes its own flock on its own descriptor, so threads of
    one process exclude each other as processes do.
    """
    key = os.path.realpath(directory)
    held = _held_locks.counts
    if key in held:
        held[key] += 1
        try:
            yield
        finally:
            held[key] -= 1
        return
    descriptor = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        held[key] = 1
        try:
            yield
        finally:
            del held[key]
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


def make_directory(path: Path, *, mode: int = 0o777) -> Path:
    """Create ``path`` and its parents if they are missing; return it.

    A directory created here gets ``mode`` (less the umask); its parents, and
    a directory that already exists, keep theirs.
    """
    path = Path(path)
    path.mkdir(mode=mode, parents=True, exist_ok=True)
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
