"""Zip archives (``.keras``, ``.skops``): opened from verified bytes, measured before use.

The measurements (member count, how far the archive unpacks, member names
that point outside it) are facts for :mod:`nnsave.trust`, which decides what
is a zip bomb; nothing here refuses a file for its size.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from ..errors import FormatError
from ._base import Expansion, Payload

__all__ = ["ZIP_MAGIC", "check_zip_magic", "open_zip", "measure"]

ZIP_MAGIC = b"PK\x03\x04"
_BIG_MEMBER = 1 << 20


def check_zip_magic(head: bytes, path: Path, kind: str, remedy: str) -> None:
    """Raise :class:`FormatError` unless ``head`` starts like a zip archive."""
    if not head.startswith(ZIP_MAGIC):
        raise FormatError(
            f"{path} is not {kind}: a {path.suffix} file is a zip archive, and this one "
            f"starts with {head[:4]!r}. {remedy}"
        )


def open_zip(payload: Payload, *, required_member: str, kind: str) -> zipfile.ZipFile:
    """The payload as a zip archive that has ``required_member``, else :class:`FormatError`."""
    try:
        archive = zipfile.ZipFile(payload.reader())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as error:
        raise FormatError(
            f"{payload.path} is a damaged {payload.path.suffix} archive ({error}). "
            "Restore it from a backup or save it again."
        ) from None
    if required_member not in archive.namelist():
        archive.close()
        raise FormatError(f"{payload.path} is a zip archive but not a {kind}: it has no {required_member}.")
    return archive


def measure(archive: zipfile.ZipFile, archive_bytes: int) -> tuple[Expansion, tuple[str, ...]]:
    """How far ``archive`` unpacks, and the member names that point outside it."""
    members = archive.infolist()
    hostile = []
    unpacked = 0
    worst = 1.0
    for member in members:
        name = PurePosixPath(member.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in member.filename or ":" in member.filename:
            hostile.append(member.filename)
        unpacked += member.file_size
        if member.file_size > _BIG_MEMBER:
            worst = max(worst, member.file_size / max(member.compress_size, 1))
    return Expansion(archive_bytes, unpacked, len(members), worst), tuple(hostile)
