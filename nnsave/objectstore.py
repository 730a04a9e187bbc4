"""Where bytes meet an object store: the only module that talks to fsspec.

nnsave saves to and loads from ``s3://``, ``gs://``, ``az://`` and
``memory://`` URLs through fsspec (``file://`` URLs are plain local paths and
take the local route, ``nnsave.storage``). ``storage_options`` go to
fsspec as they are, and each store's own environment variables work (for S3:
``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``).

Object stores cannot rename, so the local protocol (stage, then rename into
place) does not carry over. This is the protocol that replaces it; for a
target ``m.keras`` a save runs five steps (``nnsave.artifact.write_pair``):

1. Stream the payload to its final key, hashing while it uploads, without
   committing the upload: on S3 the parts of a multipart upload are sent,
   and ``CompleteMultipartUpload`` waits; on GCS the resumable upload's last
   chunk waits. Stores without uncommitted uploads (Azure through adlfs,
   ``memory://``) get a hidden staging object ``.m.keras.nnsave-tmp-<token>``
   instead.
2. Write the new signed manifest to a staging object
   ``.m.keras.nnsave.json.nnsave-tmp-<token>``.
3. Commit the payload: the object appears whole, at once (S3, GCS); or the
   staging object is copied server-side to the final key, which also
   appears whole (Azure, ``memory://``), and the staging object is deleted.
4. Write the final manifest ``m.keras.nnsave.json`` (one PUT: whole or not at all).
5. Delete the staging manifest.

What a reader sees, and why it is never a mixed pair: a reader trusts only a
payload whose manifest (and signature) match it, hashing the bytes as they
download. Before step 3 it finds the previous pair, intact. Between steps 3
and 4 the payload is new and the manifest old: that mismatch is read again
(a writer is at work), and if it stays, the staged manifest of step 2
describes the payload exactly, so the reader rolls forward to it, as a local
reader rolls forward a save killed between its two renames. A writer killed
after step 3 leaves exactly that state for good; a reader publishes the
staged manifest once it is older than :data:`STALE_SECONDS` (the writer is
surely dead) and it may write there. Anything else that does not match is
reported, never loaded.

Two writers racing on one key. Without a lock, their steps can interleave:
writer A commits, B commits, B writes its manifest, A writes its manifest.
The pair left is B's payload with A's manifest. Readers detect the mismatch
and refuse it; neither save's data is loaded in part. The cure is to repeat
the last save. Give each run its own key (checkpoints: one writer per run
directory), as the local protocol needs no such rule because it has a lock.

``overwrite=False`` uses the store's conditional create where it has one:
S3's ``If-None-Match: *`` on ``CompleteMultipartUpload`` (s3fs's ``mode="xb"``;
moto honours it and answers 412) and GCS's ``ifGenerationMatch=0`` (gcsfs's
``mode="xb"``): of two savers, exactly one wins. On Azure and ``memory://``
the check happens just before the copy of step 3, and is **not atomic**.

Torn uploads. A save killed before step 3 leaves an uncommitted multipart
upload (S3), and perhaps a staged manifest or staging object. Nothing takes
a lock, so what is stale is told by age: leftovers older than
:data:`STALE_SECONDS` are removed by ``nnsave.artifact.recover`` (every
save runs it on its own key's staging objects; :class:`nnsave.Checkpointer`
runs it on its directory when training starts; ``nnsave clean`` runs it on
any directory). GCS forgets an unfinished resumable upload after a week, and
Azure drops uncommitted blocks after a week, by themselves. moto reports every
multipart upload as initiated in 2010, so there every leftover counts as old.

Loads download while hashing, into memory for files up to
:data:`MEMORY_LIMIT` and beyond that into a private temporary file (mode 0600,
in a directory of mode 0700, unlinked at once), which is then memory-mapped;
the handler deserialises from those verified bytes. No file is ever held
twice in memory. S3 reads are pinned to the ETag seen when the download
started (s3fs sends ``If-Match``), so an object replaced mid-download fails
the read instead of mixing two versions.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from .errors import (
    FileMissingError,
    MissingDependencyError,
    PathError,
    TargetExistsError,
    UnreadableFileError,
    UnwritableError,
)
from .hashing import Digest, StreamHasher
from .storage import TEMP_MARKER, HashingWriter, RegularFile, open_regular

__all__ = [
    "SCHEMES",
    "STALE_SECONDS",
    "MEMORY_LIMIT",
    "ObjectPath",
    "locate",
    "Upload",
    "UploadTransaction",
    "StreamTransaction",
    "Fetched",
    "fetch",
    "read_stream",
    "read_small",
    "put_bytes",
    "remove",
    "exists",
    "identity",
    "size",
    "names",
    "is_directory",
    "staging_name",
    "staged_at",
    "stale_multipart_uploads",
]

#: URL schemes served by fsspec, and the pip extra that brings each one's library.
SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "memory": None,
}
#: Stores whose uploads stay invisible until committed; the others stage an object.
_UNCOMMITTED_UPLOADS = {"s3", "s3a", "gs", "gcs"}
#: Leftovers of a save older than this belong to a writer that died.
STALE_SECONDS = 3600.0
#: Downloads up to this size stay in memory; larger ones go to a private temporary file.
MEMORY_LIMIT = 32 << 20
#: Bytes asked of the store per read, and sent per part of an upload.
_CHUNK = 8 << 20
#: How often a download starts again when the object is replaced under it.
_FETCH_ATTEMPTS = 5

Progress = Callable[[int], None] | None


# --------------------------------------------------------------------------- locations


class ObjectPath:
    """A file on an object store: its URL, and the fsspec file system that reaches it.

    It offers the part of :class:`pathlib.PurePath` that nnsave uses
    (``name``, ``suffix``, ``parent``, ``with_name``, ``/``) and prints as its
    URL. It is deliberately not ``os.PathLike``: nothing can open it as a
    local file by mistake.
    """

    __slots__ = ("fs", "scheme", "key")

    def __init__(self, fs: Any, scheme: str, key: str) -> None:
        self.fs = fs
        self.scheme = scheme
        self.key = key.rstrip("/") or "/"

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.fs, self.scheme, posixpath.dirname(self.key))

    def with_name(self, name: str) -> ObjectPath:
        return ObjectPath(self.fs, self.scheme, posixpath.join(posixpath.dirname(self.key), name))

    def with_suffix(self, suffix: str) -> ObjectPath:
        return self.with_name(PurePosixPath(self.name).with_suffix(suffix).name)

    def __truediv__(self, name: str) -> ObjectPath:
        return ObjectPath(self.fs, self.scheme, posixpath.join(self.key, name))

    def relative_to(self, other: ObjectPath) -> PurePosixPath:
        return PurePosixPath(self.key).relative_to(other.key)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.key.lstrip('/')}"

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def _identity(self) -> tuple[str, str, str]:
        return self.fs._fs_token, self.scheme, self.key

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def __lt__(self, other: ObjectPath) -> bool:
        return self.key < other.key


def locate(url: str, storage_options: Mapping[str, Any] | None = None) -> ObjectPath:
    """The :class:`ObjectPath` of ``url``, with a file system built from ``storage_options``.

    Raises
    ------
    MissingDependencyError
        fsspec, or the store's library (s3fs, gcsfs, adlfs), is not installed;
        the message names the extra to install.
    """
    scheme = url.split("://", 1)[0].lower()
    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ModuleNotFoundError:
        raise _missing(url, scheme, "fsspec") from None
    try:
        fs, key = url_to_fs(url, **dict(storage_options or {}))
    except ImportError as error:
        raise _missing(url, scheme, getattr(error, "name", None) or fsspec.__name__) from None
    return ObjectPath(fs, scheme, key)


def _missing(url: str, scheme: str, module: str) -> MissingDependencyError:
    extra = SCHEMES.get(scheme)
    install = f'pip install "nnsave[{extra}]"' if extra else "pip install fsspec"
    return MissingDependencyError(
        f"{url}: reaching {scheme}:// needs the {module} package, which is not installed. "
        f"Install it with: {install}"
    )


@contextlib.contextmanager
def _errors(location: ObjectPath, action: str) -> Iterator[None]:
    """The store's errors as nnsave's, by exception type; each names the URL."""
    try:
        yield
    except FileNotFoundError:
        raise FileMissingError(
            f"No such object: {location}. Check the URL, and that the bucket exists.", str(location)
        ) from None
    except FileExistsError:
        raise TargetExistsError(
            f"{location} exists and overwrite=False; choose another name or pass overwrite=True.", str(location)
        ) from None
    except PermissionError as error:
        kind = UnwritableError if action == "write" else UnreadableFileError
        raise kind(
            f"Cannot {action} {location}: access denied ({error}). Check the credentials "
            "(for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and the bucket's permissions.",
            str(location),
        ) from None
    except OSError as error:
        raise PathError(f"Cannot {action} {location}: {error}.", str(location)) from None
    except Exception as error:
        if not _is_client_error(error):
            raise
        raise PathError(
            f"Cannot {action} {location}: {type(error).__name__}: {error}. Check the "
            "endpoint (AWS_ENDPOINT_URL) and the credentials.",
            str(location),
        ) from None


def _is_client_error(error: Exception) -> bool:
    """True for the errors a store's client library raises before any request succeeds."""
    try:
        from botocore.exceptions import BotoCoreError
    except ModuleNotFoundError:
        return False
    return isinstance(error, BotoCoreError)


# --------------------------------------------------------------------------- small objects


def read_small(location: ObjectPath, limit: int) -> bytes:
    """The whole object, refusing more than ``limit`` bytes.

    Raises :class:`nnsave.PathError` (missing, unreadable) and ``ValueError``
    (larger than ``limit``).
    """
    with _errors(location, "read"):
        location.fs.invalidate_cache(location.key)
        if location.fs.info(location.key).get("type") == "directory":
            raise FileNotFoundError(location.key)
        data = location.fs.cat_file(location.key, start=0, end=limit + 1)
    if len(data) > limit:
        raise ValueError(f"{location} is more than the {limit} bytes expected")
    return data


def put_bytes(location: ObjectPath, data: bytes) -> None:
    """Write a whole object in one request: readers see the old one or this one."""
    with _errors(location, "write"):
        location.fs.pipe_file(location.key, data)


def remove(locations: Iterable[ObjectPath]) -> None:
    """Delete objects, in order; missing ones are fine."""
    for location in locations:
        with _errors(location, "delete"), contextlib.suppress(FileNotFoundError):
            location.fs.rm_file(location.key)
        location.fs.invalidate_cache(location.key)


def _info(location: ObjectPath) -> dict[str, Any] | None:
    with _errors(location, "read"):
        location.fs.invalidate_cache(location.key)
        try:
            info = location.fs.info(location.key)
        except FileNotFoundError:
            return None
    return info if info.get("type") != "directory" else None


def exists(location: ObjectPath) -> bool:
    """True if an object (not a prefix) is there."""
    return _info(location) is not None


def identity(location: ObjectPath) -> tuple[Any, ...] | None:
    """What identifies this version of the object (size and ETag or its like); None if missing."""
    info = _info(location)
    if info is None:
        return None
    version = next((info[key] for key in ("ETag", "etag", "generation", "version_id") if info.get(key)), None)
    if version is None:
        version = str(info.get("created") or info.get("LastModified") or info.get("last_modified"))
    return info.get("size"), str(version)


def size(location: ObjectPath) -> int:
    """The object's size in bytes; 0 if it is missing."""
    info = _info(location)
    return int(info.get("size") or 0) if info else 0


def names(directory: ObjectPath) -> list[str]:
    """The names of the objects directly under ``directory``, sorted; empty if there are none."""
    with _errors(directory, "list"):
        directory.fs.invalidate_cache(directory.key)
        try:
            entries = directory.fs.ls(directory.key, detail=True)
        except FileNotFoundError:
            return []
    return sorted(posixpath.basename(entry["name"].rstrip("/")) for entry in entries if entry.get("type") != "directory")


def is_directory(location: ObjectPath) -> bool:
    """True if objects exist under ``location``'s prefix (object stores have no real folders)."""
    with _errors(location, "list"):
        location.fs.invalidate_cache(location.key)
        return bool(location.fs.isdir(location.key))


def make_directory(location: ObjectPath) -> None:
    """Create the prefix where the store has folders (``memory://``); elsewhere nothing to do."""
    with _errors(location, "write"), contextlib.suppress(FileExistsError):
        location.fs.makedirs(location.key, exist_ok=True)


# --------------------------------------------------------------------------- staging names


def staging_name(target_name: str) -> str:
    """A hidden name for something staged for ``target_name``, carrying when it was staged.

    >>> staging_name("m.keras").startswith(".m.keras.nnsave-tmp-")
    True
    """
    return f".{target_name}{TEMP_MARKER}{int(time.time()):x}-{secrets.token_hex(6)}"


def staged_at(name: str) -> float | None:
    """When the staging object ``name`` was staged (seconds since the epoch); None if not one.

    >>> staged_at(".m.keras.nnsave-tmp-65000000-0123456789ab")
    1694498816.0
    """
    if not name.startswith(".") or TEMP_MARKER not in name:
        return None
    stamp = name.rsplit(TEMP_MARKER, 1)[1].split("-", 1)[0]
    try:
        return float(int(stamp, 16))
    except ValueError:
        return None


def stale_multipart_uploads(directory: ObjectPath, older_than: float) -> list[tuple[str, str]]:
    """S3 multipart uploads under ``directory`` started more than ``older_than`` seconds ago.

    Returns ``(key, upload id)`` pairs; empty for stores without listable uploads.
    """
    lister = getattr(directory.fs, "list_multipart_uploads", None)
    if lister is None:
        return []
    bucket, _, prefix = directory.key.partition("/")
    prefix = f"{prefix}/" if prefix else ""
    with _errors(directory, "list"):
        uploads = lister(bucket)
    cutoff = time.time() - older_than
    return [
        (upload["Key"], upload["UploadId"])
        for upload in uploads
        if upload["Key"].startswith(prefix) and "/" not in upload["Key"][len(prefix) :]
        and _timestamp(upload.get("Initiated")) <= cutoff
    ]


def abort_multipart_upload(directory: ObjectPath, key: str, upload_id: str) -> None:
    """Abort one uncommitted S3 upload, found by :func:`stale_multipart_uploads`."""
    bucket = directory.key.partition("/")[0]
    with _errors(directory, "write"), contextlib.suppress(FileNotFoundError):
        directory.fs.abort_mpu(bucket, key, upload_id)


def _timestamp(moment: Any) -> float:
    if isinstance(moment, datetime):
        return moment.astimezone(timezone.utc).timestamp()
    return float(moment) if isinstance(moment, (int, float)) else 0.0


# --------------------------------------------------------------------------- writing


class Upload:
    """One payload on its way to its key: uploaded while it is written, visible only on :meth:`commit`.

    On S3 and GCS the upload itself waits uncommitted; elsewhere the bytes
    go to a hidden staging object, copied to the key on commit. ``exclusive``
    makes the commit a conditional create where the store has one.
    """

    def __init__(self, target: ObjectPath, *, exclusive: bool) -> None:
        self.target = target
        self.exclusive = exclusive
        self.uncommitted = target.fs.protocol in _UNCOMMITTED_UPLOADS or bool(
            set(_protocols(target.fs)) & _UNCOMMITTED_UPLOADS
        )
        self.staging = None if self.uncommitted else target.with_name(staging_name(target.name))
        mode = "xb" if exclusive and self.uncommitted else "wb"
        with _errors(target, "write"):
            if self.uncommitted:
                self.file = target.fs.open(target.key, mode, block_size=_CHUNK, autocommit=False)
            else:
                assert self.staging is not None
                self.file = target.fs.open(self.staging.key, mode, block_size=_CHUNK)

    def finish(self) -> None:
        """Send what is still buffered; the upload stays uncommitted."""
        with _errors(self.target, "write"):
            self.file.close()

    def commit(self) -> None:
        """Make the payload visible under its key, whole and at once."""
        with _errors(self.target, "write"):
            if self.uncommitted:
                self.file.commit()
            else:
                assert self.staging is not None
                if self.exclusive and exists(self.target):  # not atomic: said in the docs
                    raise FileExistsError(self.target.key)
                self.target.fs.copy(self.staging.key, self.target.key)
        self.target.fs.invalidate_cache(self.target.key)
        if self.staging is not None:
            remove([self.staging])

    def discard(self) -> None:
        """Abandon the upload; the key keeps whatever it held."""
        with contextlib.suppress(Exception):  # the first error is what the caller sees
            if self.uncommitted:
                self.file.discard()
            else:
                self.file.close()
                remove([self.staging])  # type: ignore[list-item]


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = fs.protocol
    return tuple(protocol) if isinstance(protocol, (tuple, list)) else (protocol,)


class StreamTransaction:
    """What a format handler writes into when the destination is a stream, not a local directory.

    It offers the interface of :class:`nnsave.storage.Transaction` that
    handlers use (``stream``, ``staging_path``, ``write_bytes``,
    ``digest_of``) for one target. Bytes are hashed as they pass to
    ``destination``. A handler that insists on a file name gets a private
    temporary file, which is streamed (and hashed) into the destination when
    :meth:`finish` runs.
    """

    def __init__(
        self, destination: BinaryIO, target: Any, algorithms: Iterable[str], progress: Progress = None
    ) -> None:
        self.destination = destination
        self.target = target
        self.algorithms = tuple(algorithms)
        self.progress = progress
        self.digest: Digest | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    @contextlib.contextmanager
    def stream(self, target: Any) -> Iterator[HashingWriter]:
        """Yield a hashing stream whose bytes go to the destination."""
        self._check_target(target)
        writer = HashingWriter(self.destination, self.algorithms, str(target), early_sync=False, progress=self.progress)
        with contextlib.closing(writer):
            yield writer
            self.digest = writer.digest

    def write_bytes(self, target: Any, data: bytes) -> Digest:
        with self.stream(target) as writer:
            writer.write(data)
        return writer.digest

    def staging_path(self, target: Any) -> Path:
        """A private local file for a writer that needs a name; sent on at :meth:`finish`."""
        self._check_target(target)
        self._folder = tempfile.TemporaryDirectory(prefix="nnsave-upload-")  # mode 0700
        return Path(self._folder.name) / f"staged{target.suffix}"

    def digest_of(self, target: Any) -> Digest:
        self._check_target(target)
        if self.digest is None and self._folder is not None:
            staged = Path(self._folder.name) / f"staged{target.suffix}"
            with open_regular(staged) as handle, self.stream(target) as writer:
                writer.write(handle.contents())
        if self.digest is None:
            raise KeyError(target)
        return self.digest

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None

    def _check_target(self, target: Any) -> None:
        if target != self.target:
            raise ValueError(f"{target} is not this transaction's target {self.target}")


class UploadTransaction(StreamTransaction):
    """A :class:`StreamTransaction` whose destination is an uncommitted :class:`Upload`."""

    def __init__(self, target: ObjectPath, algorithms: Iterable[str], *, exclusive: bool, progress: Progress = None) -> None:
        self.upload = Upload(target, exclusive=exclusive)
        super().__init__(self.upload.file, target, algorithms, progress)

    def finish(self) -> Digest:
        """Send the rest of the payload (uncommitted) and return its digest."""
        digest = self.digest_of(self.target)
        self.upload.finish()
        return digest


# --------------------------------------------------------------------------- reading


class Fetched:
    """Bytes read (and hashed) from a store or a stream, held privately: the bytes to verify and load.

    It offers what :class:`nnsave.artifact.PairCheck` needs of an open file:
    ``size``, ``head``, ``contents``, ``descriptor_path``,
    ``changed_since_opened`` and ``close``. Small files are in memory; large
    ones in an unlinked private temporary file, memory-mapped.
    """

    #: Nobody else can change a private copy, whatever the store's permissions.
    others_can_write = False

    def __init__(
        self,
        digest: Digest,
        memory: bytearray | None,
        spilled: RegularFile | None,
        source: ObjectPath | None,
        seen: tuple[Any, ...] | None,
    ) -> None:
        self.digest = digest
        self._memory = memory
        self._spilled = spilled
        self._source = source
        self._seen = seen

    @property
    def size(self) -> int:
        return self.digest.size

    def head(self, count: int) -> bytes:
        if self._spilled is not None:
            return self._spilled.head(count)
        assert self._memory is not None
        return bytes(self._memory[:count])

    def contents(self) -> memoryview:
        if self._spilled is not None:
            return self._spilled.contents()
        assert self._memory is not None
        return memoryview(self._memory).toreadonly()

    def descriptor_path(self) -> str | None:
        return self._spilled.descriptor_path() if self._spilled is not None else None

    def changed_since_opened(self) -> bool:
        """True if the object now differs from the one that was downloaded."""
        return self._source is not None and identity(self._source) != self._seen

    def close(self) -> None:
        if self._spilled is not None:
            self._spilled.close()
        self._memory = None


class _Spool:
    """Collects bytes in memory until :data:`MEMORY_LIMIT`, then in a private temporary file."""

    def __init__(self) -> None:
        self.memory: bytearray | None = bytearray()
        self.file: io.BufferedWriter | None = None
        self.spilled: RegularFile | None = None

    def write(self, chunk: bytes) -> None:
        if self.memory is not None and len(self.memory) + len(chunk) > MEMORY_LIMIT:
            self.file = _private_temporary_file()
            self.file.write(self.memory)
            self.memory = None
        if self.memory is not None:
            self.memory += chunk
        else:
            assert self.file is not None
            self.file.write(chunk)

    def finish(self) -> None:
        if self.file is not None:
            self.file.flush()
            descriptor = self.file.fileno()
            self.spilled = RegularFile(Path("<download>"), os.dup(descriptor), os.fstat(descriptor))
            self.file.close()

    def abandon(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.spilled is not None:
            self.spilled.close()


def _private_temporary_file() -> io.BufferedWriter:
    """A new file readable by this user only, already unlinked: nothing is left behind, even by a kill."""
    folder = tempfile.mkdtemp(prefix="nnsave-download-")  # mode 0700
    try:
        path = os.path.join(folder, "payload")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        with contextlib.suppress(OSError):  # Windows cannot unlink an open file; it goes with the folder
            os.unlink(path)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(folder)
    return io.open(descriptor, "wb", closefd=True)


def read_stream(
    stream: BinaryIO,
    algorithms: Iterable[str],
    *,
    progress: Progress = None,
    source: ObjectPath | None = None,
    seen: tuple[Any, ...] | None = None,
) -> Fetched:
    """Read ``stream`` to its end, hashing as the bytes arrive, into a private :class:`Fetched`."""
    hasher = StreamHasher(algorithms)
    spool = _Spool()
    try:
        while chunk := stream.read(_CHUNK):
            chunk = bytes(chunk)
            hasher.update(chunk, memoryview(chunk))
            spool.write(chunk)
            if progress is not None:
                progress(len(chunk))
        digest = hasher.digest()
        spool.finish()
    except BaseException:
        spool.abandon()
        raise
    finally:
        hasher.close()
    return Fetched(digest, spool.memory, spool.spilled, source, seen)


def fetch(location: ObjectPath, algorithms: Iterable[str], *, progress: Progress = None) -> Fetched:
    """Download ``location`` while hashing it; the result holds the only copy of the bytes.

    Raises
    ------
    nnsave.FileMissingError, nnsave.PathError
        The object is missing or cannot be read.
    """
    for attempt in range(_FETCH_ATTEMPTS):
        seen = identity(location)
        if seen is None:
            raise FileMissingError(f"No such object: {location}. Check the URL.", str(location))
        with _errors(location, "read"):
            try:
                with location.fs.open(location.key, "rb", block_size=_CHUNK, cache_type="none") as stream:
                    return read_stream(stream, algorithms, progress=progress, source=location, seen=seen)
            except OSError as error:
                if not _replaced_while_read(error):
                    raise
        time.sleep(0.05 * (attempt + 1))  # a writer replaced it mid-download: read the new one
    raise PathError(
        f"{location} was replaced {_FETCH_ATTEMPTS} times while it was being read. Wait for "
        "the process that keeps saving it, then load again.",
        str(location),
    )


def _replaced_while_read(error: OSError) -> bool:
    """True if the store refused a read because the object changed since it started (S3's If-Match)."""
    try:
        from s3fs.utils import FileExpired
    except ModuleNotFoundError:
        return False
    return isinstance(error, FileExpired)
