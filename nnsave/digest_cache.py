"""Remember verified digests, so a repeat load need not hash a large file again.

Hashing a gigabyte takes a fifth of a second; memory-mapping it takes almost
nothing. Like git's index, this module records, per user, the digest of a
file together with the file's identity and status (device, inode, size,
modification and status-change times), all read with ``fstat`` from the very
descriptor whose bytes were hashed. A later lookup, again by ``fstat`` of an
open descriptor, returns the recorded digest only if all five still match.
Nothing here looks a file up by its path, so a path that is swapped or a
symbolic link that is flipped while nnsave works can never attach one file's
digest to another file.

Why a match can be trusted: the status-change time (ctime) cannot be set by
user code. Every write, truncation, ``chmod`` or ``utime`` sets it to the
current time, and a file renamed over the path brings its own inode. The one
gap is a change within the same tick of the file system's clock as the
recorded ctime; the racy rule closes it (see :data:`RACY_SECONDS`).

What a match cannot detect: a change that bypasses the file system (bit rot
on the medium, writes to the raw block device) or a file server whose clock
lags this machine's by more than :data:`RACY_SECONDS`. ``nnsave verify``
therefore always hashes. Files that another user could write are never looked
up: only their owner's own change could then go unseen.

The cache is only an accelerator: a damaged, missing, foreign or unwritable
cache is a miss, never an error.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import parsing, storage
from .hashing import Digest, is_hex_digest

__all__ = [
    "CACHE_DIR_VARIABLE",
    "SWITCH_VARIABLE",
    "MIN_CACHED_BYTES",
    "RACY_SECONDS",
    "cache_directory",
    "cached_digest",
    "remember",
    "digest_of",
]

#: Names the cache directory itself, overriding the default location.
CACHE_DIR_VARIABLE = "NNSAVE_CACHE_DIR"

#: Set to ``0``, ``off``, ``false`` or ``no`` to turn the cache off.
SWITCH_VARIABLE = "NNSAVE_DIGEST_CACHE"

#: Files smaller than this are always hashed in full (that takes under 15 ms).
MIN_CACHED_BYTES = 64 << 20

#: An entry is recorded only if the file's mtime and ctime were at least this
#: many seconds old when hashing began. Any write after that moment then gets
#: a ctime later than the recorded one, on every file system whose clock ticks
#: at most this coarsely: 2 s rather than 1 s, because FAT's clock ticks in 2 s.
RACY_SECONDS = 2.0

_OFF_VALUES = frozenset({"0", "off", "false", "no"})
_MAX_ENTRY_BYTES = 16 << 10
_INT_FIELDS = ("dev", "ino", "size", "mtime_ns", "ctime_ns", "recorded_ns")


@dataclass(frozen=True)
class _Version:
    """What identifies one version of one file: its identity and its status."""

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

    @property
    def entry_name(self) -> str:
        return f"{self.dev:x}-{self.ino:x}.json"


def cache_directory() -> Path | None:
    """Where the digest cache lives, or None if it is switched off.

    Returns
    -------
    pathlib.Path or None
        ``$NNSAVE_CACHE_DIR`` if set, else the user's cache directory plus
        ``nnsave/digests`` (``~/.cache/nnsave/digests`` on Linux). None if
        ``NNSAVE_DIGEST_CACHE`` is ``0``, ``off``, ``false`` or ``no``. The
        directory may not exist yet; it is created on the first record.

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
    import platformdirs

    return Path(platformdirs.user_cache_dir("nnsave", appauthor=False)) / "digests"


def cached_digest(handle: storage.RegularFile, algorithm: str) -> Digest | None:
    """The digest recorded for exactly this version of the open file, or None.

    None for a file that someone else could write, a file smaller than
    :data:`MIN_CACHED_BYTES`, no entry, a changed file, or a disabled,
    foreign or damaged cache. The file's content is never read.
    """
    current = _Version.of(handle.status)
    if current.size < MIN_CACHED_BYTES or storage.writable_by_others(handle.status):
        return None
    directory = cache_directory()
    if directory is None:
        return None
    try:
        entry = _parse_entry(_read_entry(directory, current.entry_name))
    except OSError:
        return None
    if entry is None or entry["algorithm"] != algorithm:
        return None
    recorded = _Version(*(entry[name] for name in _INT_FIELDS[:5]))
    if recorded != current or not recorded.settled_before(entry["recorded_ns"]):
        return None
    return Digest(current.size, {algorithm: entry["digest"]})


def digest_of(
    handle: storage.RegularFile,
    algorithm: str,
    compute: Callable[[], Digest],
    *,
    refresh: bool = False,
) -> Digest:
    """The digest of the open file: from the cache if it holds this version, else ``compute()``.

    ``compute`` hashes the file's bytes (it must read them through
    ``handle``). A computed digest is recorded if the file is large enough,
    nobody else can write it, its ``fstat`` was the same before and after
    hashing, and its timestamps had settled (see :data:`RACY_SECONDS`).
    ``refresh=True`` skips the lookup (``nnsave verify`` uses it).
    """
    # The clock is read before hashing: a write at any later moment gets a
    # ctime later than a settled one, so the fstat check below sees it.
    started_ns = time.time_ns()
    if not refresh:
        hit = cached_digest(handle, algorithm)
        if hit is not None:
            return hit
    digest = compute()
    remember(handle, digest, algorithm, started_ns)
    return digest


def remember(handle: storage.RegularFile, digest: Digest, algorithm: str, started_ns: int) -> None:
    """Record ``digest`` for the open file, if the rules above allow it; never raises."""
    before = _Version.of(handle.status)
    if before.size < MIN_CACHED_BYTES or storage.writable_by_others(handle.status):
        return
    if algorithm not in digest.values or digest.size != before.size or not before.settled_before(started_ns):
        return
    try:
        after = _Version.of(os.fstat(handle.descriptor))
    except OSError:
        return
    if after != before:
        return
    directory = cache_directory()
    if directory is None:
        return
    entry = {
        "dev": before.dev,
        "ino": before.ino,
        "size": before.size,
        "mtime_ns": before.mtime_ns,
        "ctime_ns": before.ctime_ns,
        "recorded_ns": started_ns,
        "algorithm": algorithm,
        "digest": digest.values[algorithm],
    }
    try:
        storage.make_directory(directory, mode=0o700)
        if not _private_directory(directory):
            return
        with storage.transaction(directory) as pending:
            pending.write_bytes(directory / before.entry_name, json.dumps(entry).encode("ascii"))
    except (OSError, ValueError):
        return


def _is_private(status: os.stat_result) -> bool:
    """Owned by this user and writable by no one else: nobody else could have forged it."""
    if os.name == "nt":
        return True  # the per-user cache folder of the profile is private
    return status.st_uid == os.geteuid() and not status.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _private_directory(directory: Path) -> bool:
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        return _is_private(os.fstat(descriptor))
    finally:
        os.close(descriptor)


def _read_entry(directory: Path, name: str) -> bytes | None:
    """The entry's bytes, read through descriptors so that what is checked is what is read."""
    if os.name == "nt":
        try:
            return storage.read_small_file(directory / name, _MAX_ENTRY_BYTES)
        except (OSError, ValueError):
            return None
    try:
        directory_descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if not _is_private(os.fstat(directory_descriptor)):
            return None
        try:
            descriptor = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=directory_descriptor)
        except OSError:
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

    def unusable(reason: str) -> ValueError:
        return ValueError(reason)

    try:
        entry = parsing.load_json(data, unusable)
    except ValueError:
        return None
    if not isinstance(entry, dict) or set(entry) != {"algorithm", "digest", *_INT_FIELDS}:
        return None
    if any(type(entry[name]) is not int or entry[name] < 0 for name in _INT_FIELDS):  # bool is not a count
        return None
    if not isinstance(entry["algorithm"], str) or not is_hex_digest(entry["digest"]):
        return None
    return entry
