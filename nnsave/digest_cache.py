"""Remember verified digests, so a repeat load need not hash a large file again.

Hashing a gigabyte takes most of a second; memory-mapping it takes almost
nothing. Like git's index and Bazel's digest cache, this module records, per
user, the sha256 of a file together with the file's identity and stat
(device, inode, size, modification and status-change times). A later lookup
returns the recorded digest only if all five still match.

Why a match can be trusted: the status-change time (ctime) cannot be set by
user code. Every write, truncation, ``chmod`` or ``utime`` sets it to the
current time, and a file renamed over the path brings its own inode. The one
gap is a change within the same tick of the file system's clock as the
recorded ctime; the racy rule closes it (see :data:`RACY_SECONDS`).

What a match cannot detect: a change that bypasses the file system (bit rot on
the medium, writes to the raw block device, a disk edited while unmounted)
or a file server whose clock lags this machine's by more than
:data:`RACY_SECONDS`. ``nnsave verify`` therefore always hashes the file
(``file_digest(path, refresh=True)``).

The cache is only an accelerator: a damaged, missing, foreign or unwritable
cache is a miss, never an error. Each entry is one small JSON file named by
the sha256 of the payload's real path, written atomically by
:mod:`nnsave.storage`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import storage

__all__ = [
    "CACHE_DIR_VARIABLE",
    "SWITCH_VARIABLE",
    "MIN_CACHED_BYTES",
    "RACY_SECONDS",
    "cache_directory",
    "cached_digest",
    "file_digest",
]

#: Names the cache directory itself, overriding the XDG location.
CACHE_DIR_VARIABLE = "NNSAVE_CACHE_DIR"

#: Set to ``0``, ``off``, ``false`` or ``no`` to turn the cache off.
SWITCH_VARIABLE = "NNSAVE_DIGEST_CACHE"

#: Files smaller than this are always hashed in full (that takes under 50 ms).
MIN_CACHED_BYTES = 64 << 20

#: An entry is recorded only if the file's mtime and ctime were at least this
#: many seconds old when hashing began. Any write after that moment then gets
#: a ctime later than the recorded one, on every file system whose clock ticks
#: at most this coarsely: 2 s rather than 1 s, because FAT's clock ticks in 2 s.
RACY_SECONDS = 2.0

_OFF_VALUES = frozenset({"0", "off", "false", "no"})
_ENTRY_SUFFIX = ".json"
_MAX_ENTRY_BYTES = 16 << 10
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_INT_FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns", "recorded_ns")


@dataclass(frozen=True)
class _Version:
    """What identifies one version of one file: its identity and its stat."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> _Version:
        return cls(status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)

    def settled_before(self, moment_ns: int) -> bool:
        """True if both timestamps lie at least :data:`RACY_SECONDS` before ``moment_ns``."""
        return max(self.mtime_ns, self.ctime_ns) <= moment_ns - int(RACY_SECONDS * 1e9)


def cache_directory() -> Path | None:
    """Where the digest cache lives, or None if it is switched off.

    Returns
    -------
    pathlib.Path or None
        ``$NNSAVE_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/nnsave/digests``,
        else ``~/.cache/nnsave/digests``. None if ``NNSAVE_DIGEST_CACHE`` is
        ``0``, ``off``, ``false`` or ``no``, or no home directory is known.
        The directory may not exist yet; it is created on the first record.

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"NNSAVE_DIGEST_CACHE": "off"}):
    ...     print(cache_directory())
    None
    """
    if os.environ.get(SWITCH_VARIABLE, "").strip().lower() in _OFF_VALUES:
        return None
    explicit = os.environ.get(CACHE_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG specification says a relative path is invalid and to be ignored.
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "nnsave" / "digests"
    try:
        return Path.home() / ".cache" / "nnsave" / "digests"
    except (RuntimeError, KeyError):
        return None


def cached_digest(path: Path) -> storage.Digest | None:
    """The digest recorded for exactly this version of ``path``, or None.

    Parameters
    ----------
    path : pathlib.Path
        The payload file. Symbolic links are followed.

    Returns
    -------
    storage.Digest or None
        The recorded digest if an entry exists and the file's device, inode,
        size, mtime and ctime all equal the recorded ones. None otherwise:
        no entry, a changed file, a file smaller than
        :data:`MIN_CACHED_BYTES`, a disabled or untrusted cache, or any error
        while reading it. The file's content is never read.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> small = pathlib.Path(tempfile.mkdtemp()) / "small.bin"
    >>> _ = small.write_bytes(b"too small to be cached")
    >>> cached_digest(small) is None
    True
    """
    try:
        current = _Version.of(os.stat(path))
    except OSError:
        return None
    return _lookup(os.path.realpath(path), current)


def file_digest(path: Path, *, refresh: bool = False) -> storage.Digest:
    """The sha256 and size of ``path``: from the cache if it holds this version, else hashed.

    A file that is hashed is recorded in the cache if it is large enough,
    its stat was the same before and after hashing (it did not change while
    being read), and its timestamps had settled (see :data:`RACY_SECONDS`).

    Parameters
    ----------
    path : pathlib.Path
        The payload file. Symbolic links are followed.
    refresh : bool, default False
        Hash the file even if the cache holds its digest, and record the
        fresh digest in place of the old. ``nnsave verify`` uses this.

    Returns
    -------
    storage.Digest
        The same value :func:`nnsave.storage.hash_file` would return.

    Raises
    ------
    OSError
        The errors :func:`nnsave.storage.hash_file` raises for an unreadable
        or missing file. Problems with the cache itself never raise.

    Examples
    --------
    >>> import hashlib, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "weights.bin"
    >>> _ = path.write_bytes(b"0123")
    >>> file_digest(path).sha256 == hashlib.sha256(b"0123").hexdigest()
    True
    """
    # The clock is read before the first stat: a write at any later moment
    # gets a ctime later than a settled one, so the stat check below sees it.
    started_ns = time.time_ns()
    try:
        before = _Version.of(os.stat(path))
    except OSError:
        return storage.hash_file(path)  # raises the error a plain hash would
    real = os.path.realpath(path)
    if not refresh:
        hit = _lookup(real, before)
        if hit is not None:
            return hit
    digest = storage.hash_file(path)
    try:
        after = _Version.of(os.stat(path))
    except OSError:
        return digest
    if after == before and digest.size == before.size and before.settled_before(started_ns):
        _record(real, before, digest, started_ns)
    return digest


def _lookup(real: str, current: _Version) -> storage.Digest | None:
    if current.size < MIN_CACHED_BYTES:
        return None
    directory = cache_directory()
    if directory is None:
        return None
    try:
        entry = _parse_entry(_read_entry(directory, _entry_name(real)))
    except (OSError, ValueError, RecursionError):
        return None
    if entry is None or entry["path"] != real:
        return None
    recorded = _Version(*(entry[name] for name in _INT_FIELDS[:5]))
    if recorded != current or not recorded.settled_before(entry["recorded_ns"]):
        return None
    return storage.Digest(entry["sha256"], entry["size"])


def _record(real: str, version: _Version, digest: storage.Digest, recorded_ns: int) -> None:
    if version.size < MIN_CACHED_BYTES:
        return
    directory = cache_directory()
    # A reader verifying the payload may hold its directory's lock, which
    # publishing an entry there would wait for.
    if directory is None or os.path.realpath(directory) == os.path.dirname(real):
        return
    try:
        storage.make_directory(directory, mode=0o700)
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if not _is_private(os.fstat(descriptor)):
                return
        finally:
            os.close(descriptor)
        entry = {
            "path": real,
            "dev": version.dev,
            "ino": version.ino,
            "size": version.size,
            "mtime_ns": version.mtime_ns,
            "ctime_ns": version.ctime_ns,
            "recorded_ns": recorded_ns,
            "sha256": digest.sha256,
        }
        with storage.atomic_write() as transaction:
            transaction.write_bytes(directory / _entry_name(real), json.dumps(entry).encode("ascii"))
    except (OSError, ValueError):
        return


def _entry_name(real_path: str) -> str:
    return hashlib.sha256(os.fsencode(real_path)).hexdigest() + _ENTRY_SUFFIX


def _is_private(status: os.stat_result) -> bool:
    """Owned by this user and writable by no one else: nobody else could have forged it."""
    return status.st_uid == os.geteuid() and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read_entry(directory: Path, name: str) -> bytes | None:
    """The entry's bytes, read through descriptors so that what is checked is what is read."""
    try:
        directory_descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        if not _is_private(os.fstat(directory_descriptor)):
            return None
        try:
            descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory_descriptor)
        except FileNotFoundError:
            return None
        with open(descriptor, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not (stat.S_ISREG(status.st_mode) and _is_private(status)):
                return None
            data = handle.read(_MAX_ENTRY_BYTES + 1)
    finally:
        os.close(directory_descriptor)
    return data if len(data) <= _MAX_ENTRY_BYTES else None


def _parse_entry(data: bytes | None) -> dict[str, Any] | None:
    """The entry as a dict if it has exactly the expected fields and types, else None."""
    if data is None:
        return None
    entry = json.loads(data.decode("ascii"))
    if not isinstance(entry, dict) or set(entry) != {"path", "sha256", *_INT_FIELDS}:
        return None
    if not isinstance(entry["path"], str):
        return None
    if any(type(entry[name]) is not int for name in _INT_FIELDS):  # bool is not a count
        return None
    if entry["size"] < 0 or not isinstance(entry["sha256"], str) or not _SHA256_HEX.fullmatch(entry["sha256"]):
        return None
    return entry
