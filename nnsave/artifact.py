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

Object stores. The same unit, written by the five-step protocol that
:mod:`nnsave.objectstore` describes (upload uncommitted, stage the manifest,
commit, write the manifest, drop the staged one), and checked the same way:
the payload is downloaded while it is hashed, and a mismatch is read again,
then rolled forward from a staged manifest or reported. Without a lock,
leftovers are told stale by their age (:data:`nnsave.objectstore.STALE_SECONDS`).
A caller's file object is checked the same way against the manifest the
caller hands over (:func:`checked_stream`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import digest_cache, objectstore, storage
from .errors import FileMissingError, IntegrityError, NNSaveError, PathError, Problem, TargetExistsError, UnwritableError
from .formats import Payload
from .hashing import DEFAULT_ALGORITHM, Digest, hash_buffer
from .manifest import MANIFEST_SUFFIX, MAX_MANIFEST_BYTES, Manifest, manifest_path, parse_manifest, payload_path
from .objectstore import ObjectPath
from .paths import Location
from .trust import Integrity

__all__ = [
    "PairCheck",
    "write_pair",
    "write_stream",
    "write_manifest",
    "checked_pair",
    "checked_stream",
    "read_manifest",
    "recover",
    "remove_pair",
]

Progress = Callable[[int], None] | None

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

    path: Location
    #: The open local file, or the private copy of downloaded bytes.
    handle: storage.RegularFile | objectstore.Fetched
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
        return self.handle.others_can_write

    def close(self) -> None:
        if self._payload is not None:
            self._payload.release()
        elif self._view is not None:
            self._view.release()
        self.handle.close()


# --------------------------------------------------------------------------- writing


def write_pair(
    target: Location,
    stage_payload: Callable[[Any], Digest],
    describe: Callable[[Digest], Manifest],
    *,
    overwrite: bool,
    algorithms: Iterable[str],
    progress: Progress = None,
) -> None:
    """Write a payload and its manifest as one unit; on any failure, keep the previous pair.

    ``stage_payload`` stages the payload in the transaction and returns its
    digest; ``describe`` turns that digest into the (signed) manifest.
    ``progress`` is told of each uploaded chunk (object stores only).
    """
    if isinstance(target, ObjectPath):
        _upload_pair(target, stage_payload, describe, overwrite=overwrite, algorithms=algorithms, progress=progress)
        return
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


def write_stream(
    stream: Any, target: Path, stage_payload: Callable[[Any], Digest], algorithms: Iterable[str], progress: Progress
) -> Digest:
    """Write a payload into a caller's binary file object, hashing it; return its digest.

    The stream is the caller's: nothing is staged and nothing is atomic;
    the caller keeps the manifest (see :func:`write_manifest`).
    """
    pending = objectstore.StreamTransaction(stream, target, algorithms, progress)
    try:
        return stage_payload(pending)
    finally:
        pending.close()


def write_manifest(location: Location, manifest: Manifest) -> None:
    """Write a manifest alone (the sidecar of a file object's payload), atomically."""
    data = manifest.to_json().encode("utf-8")
    if isinstance(location, ObjectPath):
        objectstore.put_bytes(location, data)
        return
    with storage.transaction(location.parent) as pending:
        pending.write_bytes(location, data)


def _upload_pair(
    target: ObjectPath,
    stage_payload: Callable[[Any], Digest],
    describe: Callable[[Digest], Manifest],
    *,
    overwrite: bool,
    algorithms: Iterable[str],
    progress: Progress,
) -> None:
    """The five steps of :mod:`nnsave.objectstore`'s protocol, for one target on a store."""
    location = manifest_path(target)
    _recover_remote(target.parent, objectstore.STALE_SECONDS, only=target.name)
    if not overwrite and (objectstore.exists(target) or objectstore.exists(location)):
        raise TargetExistsError(
            f"{target} exists and overwrite=False; choose another name or pass overwrite=True.", str(target)
        )
    staged = location.with_name(objectstore.staging_name(location.name))
    pending = objectstore.UploadTransaction(target, algorithms, exclusive=not overwrite, progress=progress)
    try:
        digest = stage_payload(pending)  # 1: uploaded, hashed, not committed
        pending.upload.finish()
        manifest = describe(digest).to_json().encode("utf-8")
        objectstore.put_bytes(staged, manifest)  # 2
        pending.upload.commit()  # 3: the payload appears whole
    except BaseException:
        pending.upload.discard()
        with contextlib.suppress(NNSaveError):
            objectstore.remove([staged])
        raise
    finally:
        pending.close()
    objectstore.put_bytes(location, manifest)  # 4
    objectstore.remove([staged])  # 5


def recover(directory: Location, *, older_than: float | None = None) -> list[Location]:
    """Finish or discard what interrupted saves left in ``directory``.

    A save killed between its two renames leaves the new payload in place
    and its new manifest complete under its staging name: that save is
    rolled forward, after its manifest is checked against the payload again.
    Every other staging file is removed. Returns the staging files handled.

    Local directories: the lock must be held, and every staging file is
    stale. Object stores: only leftovers older than ``older_than`` seconds
    (default :data:`nnsave.objectstore.STALE_SECONDS`) are, and uncommitted
    S3 multipart uploads of that age are aborted.
    """
    if isinstance(directory, ObjectPath):
        return _recover_remote(directory, objectstore.STALE_SECONDS if older_than is None else older_than)
    handled: list[Location] = []
    for staging, target in storage.stale_temporaries(directory):
        if target.name.endswith(MANIFEST_SUFFIX) and _completes(staging, payload_path(target)):
            storage.publish(staging, target)
        else:
            storage.remove_files([staging])
        handled.append(staging)
    return handled


def _recover_remote(directory: ObjectPath, older_than: float, *, only: str | None = None) -> list[Location]:
    """:func:`recover` on a store; ``only`` limits it to one target's leftovers."""
    handled: list[Location] = []
    now = time.time()
    for name in objectstore.names(directory):
        staged_at = objectstore.staged_at(name)
        if staged_at is None or now - staged_at < older_than:
            continue
        staging = directory / name
        target = directory / name[1:].split(storage.TEMP_MARKER)[0]
        if only is not None and target.name not in (only, only + MANIFEST_SUFFIX):
            continue
        if target.name.endswith(MANIFEST_SUFFIX) and _completes(staging, payload_path(target)):
            objectstore.put_bytes(target, _read_bytes(staging))
        objectstore.remove([staging])
        handled.append(staging)
    if only is None:
        for key, upload_id in objectstore.stale_multipart_uploads(directory, older_than):
            objectstore.abort_multipart_upload(directory, key, upload_id)
            handled.append(directory / posixpath.basename(key))
    return handled


def remove_pair(path: Location) -> None:
    """Delete a payload and its manifest; the payload goes first."""
    if isinstance(path, ObjectPath):
        objectstore.remove([path, manifest_path(path)])
        return
    with storage.directory_lock(path.parent):
        storage.remove_files([path, manifest_path(path)])


def _read_bytes(location: Location) -> bytes:
    """A manifest-sized file, local or on a store."""
    if isinstance(location, ObjectPath):
        return objectstore.read_small(location, MAX_MANIFEST_BYTES)
    return storage.read_small_file(location, MAX_MANIFEST_BYTES)


def _completes(staged_manifest: Location, payload: Location) -> bool:
    try:
        manifest = parse_manifest(_read_bytes(staged_manifest), source=staged_manifest)
        if isinstance(payload, ObjectPath):
            with contextlib.closing(objectstore.fetch(payload, [manifest.preferred_algorithm])) as fetched:
                digest = fetched.digest
        else:
            with storage.open_regular(payload) as handle:
                digest = hash_buffer(handle.contents(), [manifest.preferred_algorithm])
    except (NNSaveError, OSError, ValueError):
        return False
    return manifest.describes(digest)


# --------------------------------------------------------------------------- checking


@contextlib.contextmanager
def checked_pair(
    path: Location,
    *,
    format_name: str,
    extra_algorithms: Iterable[str] = (),
    rehash: bool = False,
    progress: Progress = None,
) -> Iterator[PairCheck]:
    """Open ``path`` once, compare it with its manifest, and yield the record.

    Parameters
    ----------
    path : pathlib.Path or ObjectPath
        The payload; one on an object store is downloaded while it is hashed.
    format_name : str
        The format the payload's suffix implies; a manifest of another
        format is a mismatch.
    extra_algorithms : iterable of str
        Digests to compute besides the manifest's own (``"sha256"`` for a pin).
    rehash : bool
        Hash the bytes even if the digest cache knows them, under every
        algorithm the manifest records (``verify`` does).
    progress : callable, optional
        Told the size of each chunk downloaded or hashed.

    Raises
    ------
    nnsave.PathError
        The payload is missing, a directory, a FIFO or a device, or unreadable.
    """
    check = _check(path, format_name, tuple(extra_algorithms), rehash, progress)
    try:
        yield check
    finally:
        check.close()


def read_manifest(location: Location) -> Manifest:
    """The manifest at ``location`` (a file object's sidecar), read defensively.

    Raises
    ------
    nnsave.FileMissingError
        Nothing is there.
    nnsave.IntegrityError
        It is damaged.
    """
    manifest, damage = _read_manifest(location)
    if damage is not None:
        raise damage
    if manifest is None:
        raise FileMissingError(f"The manifest {location} does not exist. Check its path or URL.", str(location))
    return manifest


@contextlib.contextmanager
def checked_stream(
    stream: Any,
    display: Path,
    manifest: Manifest | None,
    *,
    format_name: str,
    extra_algorithms: Iterable[str] = (),
    progress: Progress = None,
) -> Iterator[PairCheck]:
    """Read a caller's binary file object while hashing it, compare it with ``manifest``, yield the record.

    ``manifest`` is the one :func:`nnsave.save` returned (or
    :func:`read_manifest` read), or None: then only a pin can vouch for the
    bytes. ``display`` names the stream in messages.
    """
    algorithm = manifest.preferred_algorithm if manifest is not None else DEFAULT_ALGORITHM
    fetched = objectstore.read_stream(stream, [algorithm, *extra_algorithms], progress=progress)
    check = PairCheck(display, fetched, manifest, Integrity.NO_MANIFEST, fetched.digest)
    if manifest is not None:
        _compare(check, manifest, format_name, None)
    try:
        yield check
    finally:
        check.close()


def _check(path: Location, format_name: str, extra: tuple[str, ...], rehash: bool, progress: Progress) -> PairCheck:
    for attempt in range(_ATTEMPTS):
        check, manifest_seen = _attempt(path, format_name, extra, rehash, progress)
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


def _attempt(
    path: Location, format_name: str, extra: tuple[str, ...], rehash: bool, progress: Progress
) -> tuple[PairCheck, tuple[Any, ...] | None]:
    location = manifest_path(path)
    manifest_seen = _identity(location)
    manifest, damage = _read_manifest(location)
    algorithm = manifest.preferred_algorithm if manifest is not None else DEFAULT_ALGORITHM
    if rehash and manifest is not None:
        extra = (*extra, *manifest.digests)
    if isinstance(path, ObjectPath):
        fetched = objectstore.fetch(path, [algorithm, *extra], progress=progress)
        check = PairCheck(path, fetched, manifest, Integrity.NO_MANIFEST, fetched.digest)
    else:
        handle = storage.open_regular(path)
        try:
            check = PairCheck(path, handle, manifest, Integrity.NO_MANIFEST, Digest(handle.size))
            check.digest = _digest(check, algorithm, extra, rehash, progress)
        except BaseException:
            handle.close()
            raise
    if damage is not None:
        check.integrity, check.problem, check.detail = Integrity.MISMATCH, Problem.DAMAGED_MANIFEST, str(damage)
    elif manifest is not None:
        _compare(check, manifest, format_name, location)
    return check, manifest_seen


def _digest(check: PairCheck, algorithm: str, extra: tuple[str, ...], rehash: bool, progress: Progress) -> Digest:
    handle = check.handle
    assert isinstance(handle, storage.RegularFile)
    wanted = list(dict.fromkeys([algorithm, *extra]))
    if len(wanted) == 1:
        return digest_cache.digest_of(
            handle, algorithm, lambda: hash_buffer(check.contents(), wanted, progress), refresh=rehash
        )
    started_ns = time.time_ns()
    digest = hash_buffer(check.contents(), wanted, progress)
    digest_cache.remember(handle, digest, algorithm, started_ns)
    return digest


def _compare(check: PairCheck, manifest: Manifest, format_name: str, location: Location | None) -> None:
    path = check.path
    if manifest.format != format_name:
        problem, words = Problem.OTHER_FORMAT, f"the manifest describes a {manifest.format} file, but {path.name} is a {format_name} file"
    elif manifest.describes(check.digest):
        check.integrity = Integrity.INTACT
        return
    elif isinstance(location, Path) and isinstance(check.handle, storage.RegularFile) and _written_after(check.handle.status, location):
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


def mismatch_message(path: Location, problem: Problem, words: str) -> str:
    """The whole sentence an integrity error carries, remedy included."""
    if isinstance(path, ObjectPath):
        remedy = (
            "Do not use it. If two processes saved to this URL at once, the pair is mixed: "
            "save the model again; otherwise restore it from a backup."
        )
    elif problem is Problem.STALE_MANIFEST:
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


def _identity(location: Location) -> tuple[Any, ...] | None:
    if isinstance(location, ObjectPath):
        return objectstore.identity(location)
    try:
        status = os.stat(location)
    except OSError:
        return None
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _read_manifest(location: Location) -> tuple[Manifest | None, IntegrityError | None]:
    """The parsed manifest (None if absent), or the reason it is damaged."""
    try:
        data = _read_bytes(location)
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


def _staged_manifests(location: Location) -> list[Location]:
    """The staged manifests of saves to ``location``'s payload, as a reader finds them."""
    prefix = f".{location.name}{storage.TEMP_MARKER}"
    if isinstance(location, ObjectPath):
        with contextlib.suppress(NNSaveError):
            return [location.with_name(name) for name in objectstore.names(location.parent) if name.startswith(prefix)]
        return []
    try:
        entries = sorted(entry for entry in os.scandir(location.parent) if entry.name.startswith(prefix))
    except OSError:  # a directory that can be searched but not listed: nothing to find
        return []
    found: list[Location] = []
    for entry in entries:
        with contextlib.suppress(OSError):
            if stat.S_ISREG(entry.stat(follow_symlinks=False).st_mode):
                found.append(Path(entry.path))
    return found


def _roll_forward(check: PairCheck, format_name: str) -> bool:
    """Complete a pair from a staged manifest that describes the payload exactly."""
    for candidate in _staged_manifests(manifest_path(check.path)):
        try:
            staged = parse_manifest(_read_bytes(candidate), source=candidate)
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
            _finish_torn_save(check.path)
            return True
    return False


def _finish_torn_save(payload: Location) -> None:
    """Publish the staged manifest for good, if this process may write and no writer is busy."""
    if isinstance(payload, ObjectPath):
        # No lock tells a dead writer from a live one: only old leftovers of
        # this payload's saves are handled, and only where this process may write.
        with contextlib.suppress(NNSaveError):
            _recover_remote(payload.parent, objectstore.STALE_SECONDS, only=payload.name)
        return
    directory = payload.parent
    with contextlib.suppress(OSError, NNSaveError), storage.directory_lock(directory, wait=False) as held:
        if held:
            recover(directory)
