"""A payload and its manifest as one unit: write the pair, check the pair, recover torn pairs.

Writing. The payload is staged and hashed, the manifest built from that
digest and staged after it, and both are published by
:func:`nnsave.storage.transaction` in that order, under the directory's
writers' lock. Any number of processes may save to one path at once: they
take turns, and each save either completes or leaves the previous pair.

Checking, without any lock. The manifest is read, then the payload is opened
once and hashed through that descriptor (or its digest taken from the
per-user cache, keyed by the descriptor's ``fstat``). A digest that matches
the manifest proves the pair consistent, however the reads interleaved with
writers. A mismatch is looked at twice more before it is believed: if either
file changed meanwhile, a writer was at work, and the check starts again;
if a staged manifest (left by a save killed between its two renames)
describes the payload exactly, the pair is whole and the save is rolled
forward, where this process may write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import digest_cache, storage
from .errors import IntegrityError, NNSaveError, PathError, Problem, TargetExistsError, UnwritableError
from .formats import Payload
from .hashing import DEFAULT_ALGORITHM, Digest, hash_buffer
from .manifest import MANIFEST_SUFFIX, MAX_MANIFEST_BYTES, Manifest, manifest_path, parse_manifest, payload_path
from .trust import Integrity

__all__ = ["PairCheck", "write_pair", "checked_pair", "recover", "remove_pair"]

#: How often a check starts again when it sees a writer at work.
_ATTEMPTS = 5
#: A payload written this much later than its manifest was not written by that save.
_STALE_MARGIN_NS = 1_000_000_000


@dataclass
class PairCheck:
    """One check of a payload against its manifest: what was read, and what it showed.

    The payload stays open (one descriptor) until the ``checked_pair``
    block ends; :meth:`payload` gives a handler the very bytes that were hashed.
    """

    path: Path
    handle: storage.RegularFile
    manifest: Manifest | None
    integrity: Integrity
    digest: Digest
    problem: Problem | None = None
    #: The mismatch in words, for messages.
    detail: str | None = None
    #: A staged manifest completed a save that was killed between its renames.
    rolled_forward: bool = False
    _view: memoryview | None = field(default=None, repr=False)
    _payload: Payload | None = field(default=None, repr=False)

    def contents(self) -> memoryview:
        if self._view is None:
            self._view = self.handle.contents()
        return self._view

    def payload(self) -> Payload:
        """The verified bytes, as handlers read them."""
        if self._payload is None:
            self._payload = Payload(self.path, self.contents(), self.handle)
        return self._payload

    @property
    def others_can_write(self) -> bool:
        return storage.writable_by_others(self.handle.status)

    def close(self) -> None:
        if self._payload is not None:
            self._payload.release()
        elif self._view is not None:
            self._view.release()
        self.handle.close()


# --------------------------------------------------------------------------- writing


def write_pair(
    target: Path,
    stage_payload: Callable[[storage.Transaction], Digest],
    describe: Callable[[Digest], Manifest],
    *,
    overwrite: bool,
    algorithms: Iterable[str],
) -> None:
    """Write a payload and its manifest as one unit; on any failure, keep the previous pair.

    ``stage_payload`` stages the payload in the transaction and returns its
    digest; ``describe`` turns that digest into the (signed) manifest.
    """
    try:
        with storage.transaction(target.parent, algorithms) as pending:
            recover(target.parent)
            if not overwrite and (target.exists() or manifest_path(target).exists()):
                raise TargetExistsError(
                    f"{target} exists and overwrite=False; choose another name or pass overwrite=True.",
                    str(target),
                )
            digest = stage_payload(pending)
            pending.write_bytes(manifest_path(target), describe(digest).to_json().encode("utf-8"))
    except NNSaveError:
        raise
    except PermissionError:
        raise UnwritableError(
            f"Cannot save {target}: you may not write in {target.parent}. Choose a "
            "directory you can write to, or ask its owner for write permission.",
            str(target),
        ) from None
    except OSError as error:
        if error.errno == errno.EROFS:
            raise UnwritableError(
                f"Cannot save {target}: {target.parent} is on a read-only file system. "
                "Save somewhere writable.",
                str(target),
            ) from None
        raise


def recover(directory: Path) -> list[Path]:
    """Finish or discard what interrupted saves left in ``directory``; the lock must be held.

    A save killed between its two renames leaves the new payload in place
    and its new manifest complete under its staging name: that save is
    rolled forward, after its manifest is checked against the payload again.
    Every other staging file is removed. Returns the staging files handled.
    """
    handled = []
    for staging, target in storage.stale_temporaries(directory):
        if target.name.endswith(MANIFEST_SUFFIX) and _completes(staging, payload_path(target)):
            storage.publish(staging, target)
        else:
            storage.remove_files([staging])
        handled.append(staging)
    return handled


def remove_pair(path: Path) -> None:
    """Delete a payload and its manifest; the payload goes first."""
    with storage.directory_lock(path.parent):
        storage.remove_files([path, manifest_path(path)])


def _completes(staged_manifest: Path, payload: Path) -> bool:
    try:
        manifest = parse_manifest(storage.read_small_file(staged_manifest, MAX_MANIFEST_BYTES), source=staged_manifest)
        with storage.open_regular(payload) as handle:
            digest = hash_buffer(handle.contents(), [manifest.preferred_algorithm])
    except (NNSaveError, OSError, ValueError):
        return False
    return manifest.describes(digest)


# --------------------------------------------------------------------------- checking


@contextlib.contextmanager
def checked_pair(
    path: Path,
    *,
    format_name: str,
    extra_algorithms: Iterable[str] = (),
    rehash: bool = False,
) -> Iterator[PairCheck]:
    """Open ``path`` once, compare it with its manifest, and yield the record.

    Parameters
    ----------
    path : pathlib.Path
        The payload.
    format_name : str
        The format the payload's suffix implies; a manifest of another
        format is a mismatch.
    extra_algorithms : iterable of str
        Digests to compute besides the manifest's own (``"sha256"`` for a pin).
    rehash : bool
        Hash the bytes even if the digest cache knows them, under every
        algorithm the manifest records (``verify`` does).

    Raises
    ------
    nnsave.PathError
        The payload is missing, a directory, a FIFO or a device, or unreadable.
    """
    check = _check(path, format_name, tuple(extra_algorithms), rehash)
    try:
        yield check
    finally:
        check.close()


def _check(path: Path, format_name: str, extra: tuple[str, ...], rehash: bool) -> PairCheck:
    for attempt in range(_ATTEMPTS):
        check, manifest_seen = _attempt(path, format_name, extra, rehash)
        if check.integrity is Integrity.INTACT:
            return check
        if check.problem is not Problem.DAMAGED_MANIFEST and _roll_forward(check, format_name):
            return check
        # Asked only now: a writer may have published its manifest while the
        # staged copies were searched, and then nothing staged is left to find.
        if attempt + 1 < _ATTEMPTS and (check.handle.changed_since_opened() or _identity(manifest_path(path)) != manifest_seen):
            check.close()  # a writer is at work: read the pair again
            time.sleep(0.01 * (attempt + 1))
            continue
        break
    return check


def _attempt(path: Path, format_name: str, extra: tuple[str, ...], rehash: bool) -> tuple[PairCheck, tuple[int, ...] | None]:
    location = manifest_path(path)
    manifest_seen = _identity(location)
    manifest, damage = _read_manifest(location)
    handle = storage.open_regular(path)
    try:
        algorithm = manifest.preferred_algorithm if manifest is not None else DEFAULT_ALGORITHM
        if rehash and manifest is not None:
            extra = (*extra, *manifest.digests)
        check = PairCheck(path, handle, manifest, Integrity.NO_MANIFEST, Digest(handle.size))
        check.digest = _digest(check, algorithm, extra, rehash)
    except BaseException:
        handle.close()
        raise
    if damage is not None:
        check.integrity, check.problem, check.detail = Integrity.MISMATCH, Problem.DAMAGED_MANIFEST, str(damage)
    elif manifest is not None:
        _compare(check, manifest, format_name, location)
    return check, manifest_seen


def _digest(check: PairCheck, algorithm: str, extra: tuple[str, ...], rehash: bool) -> Digest:
    wanted = [algorithm, *(name for name in extra if name != algorithm)]
    if len(wanted) == 1:
        return digest_cache.digest_of(
            check.handle, algorithm, lambda: hash_buffer(check.contents(), wanted), refresh=rehash
        )
    started_ns = time.time_ns()
    digest = hash_buffer(check.contents(), wanted)
    digest_cache.remember(check.handle, digest, algorithm, started_ns)
    return digest


def _compare(check: PairCheck, manifest: Manifest, format_name: str, location: Path) -> None:
    path = check.path
    if manifest.format != format_name:
        problem, words = Problem.OTHER_FORMAT, f"the manifest describes a {manifest.format} file, but {path.name} is a {format_name} file"
    elif manifest.describes(check.digest):
        check.integrity = Integrity.INTACT
        return
    elif _written_after(check.handle.status, location):
        problem, words = (
            Problem.STALE_MANIFEST,
            "the file was rewritten after its manifest was written, by something other "
            "than nnsave (model.save or joblib.dump, say), so the manifest is stale",
        )
    elif check.digest.size != manifest.size:
        kind = Problem.TRUNCATED if check.digest.size < manifest.size else Problem.EXTENDED
        problem, words = kind, f"it is {check.digest.size:,} bytes, but its manifest says {manifest.size:,} ({kind.value})"
    else:
        algorithm = manifest.preferred_algorithm
        problem, words = (
            Problem.CHANGED,
            f"its {algorithm} digest is {check.digest.values.get(algorithm)}, but its manifest "
            f"says {manifest.digests[algorithm]} (same size, changed bytes)",
        )
    check.integrity, check.problem = Integrity.MISMATCH, problem
    check.detail = mismatch_message(path, problem, words)


def mismatch_message(path: Path, problem: Problem, words: str) -> str:
    """The whole sentence an integrity error carries, remedy included."""
    if problem is Problem.STALE_MANIFEST:
        remedy = (
            "If you saved it that way on purpose, save it again with nnsave.save to "
            "write a matching manifest; otherwise restore it from a backup."
        )
    else:
        remedy = "It was changed or damaged after it was saved; do not use it. Restore it from a backup or save the model again."
    return f"{path} does not match its manifest {manifest_path(path).name}: {words}. {remedy}"


def _written_after(status: os.stat_result, location: Path) -> bool:
    try:
        manifest_mtime = os.stat(location).st_mtime_ns
    except OSError:
        return False
    return status.st_mtime_ns > manifest_mtime + _STALE_MARGIN_NS


def _identity(location: Path) -> tuple[int, ...] | None:
    try:
        status = os.stat(location)
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _read_manifest(location: Path) -> tuple[Manifest | None, IntegrityError | None]:
    """The parsed manifest (None if absent), or the reason it is damaged."""
    try:
        data = storage.read_small_file(location, MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        return None, None
    except (PathError, ValueError) as error:
        return None, IntegrityError(
            f"The manifest {location} is damaged ({error}). Restore it from a backup, or "
            "save the model again with nnsave.save to write a new one.",
            Problem.DAMAGED_MANIFEST,
        )
    try:
        return parse_manifest(data, source=location), None
    except IntegrityError as error:
        return None, error


def _roll_forward(check: PairCheck, format_name: str) -> bool:
    """Complete a pair from a staged manifest that describes the payload exactly."""
    location = manifest_path(check.path)
    prefix = f".{location.name}{storage.TEMP_MARKER}"
    try:
        candidates = sorted(entry for entry in os.scandir(check.path.parent) if entry.name.startswith(prefix))
    except OSError:  # a directory that can be searched but not listed: nothing to find
        return False
    for entry in candidates:
        try:
            if not stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                continue
            staged = parse_manifest(storage.read_small_file(Path(entry.path), MAX_MANIFEST_BYTES), source=Path(entry.path))
        except (NNSaveError, OSError, ValueError):
            continue
        if staged.format != format_name:
            continue
        algorithm = staged.preferred_algorithm
        if algorithm not in check.digest.values:
            more = hash_buffer(check.contents(), [algorithm])
            check.digest = Digest(check.digest.size, {**check.digest.values, **more.values})
        if staged.describes(check.digest):
            check.manifest, check.integrity, check.problem, check.detail = staged, Integrity.INTACT, None, None
            check.rolled_forward = True
            _finish_torn_save(check.path.parent)
            return True
    return False


def _finish_torn_save(directory: Path) -> None:
    """Publish the staged manifest for good, if this process may write and no writer is busy."""
    with contextlib.suppress(OSError, NNSaveError), storage.directory_lock(directory, wait=False) as held:
        if held:
            recover(directory)
