"""Zip archives (``.keras``, ``.skops``): opened from verified bytes, measured before use.

The measurements (member count, how far the archive unpacks, member names
that point outside it) are facts for :mod:`nnsave.trust`, which decides what
is a zip bomb; nothing here refuses a file for its size.
"""

from __future__ import annotations

import lzma
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from .. import parsing
from ..errors import FormatError
from ._base import Expansion, Payload

__all__ = ["ZIP_MAGIC", "MEMBER_DAMAGE", "check_zip_magic", "open_zip", "measure", "read_member", "json_object"]

ZIP_MAGIC = b"PK\x03\x04"
_BIG_MEMBER = 1 << 20
#: What reading a damaged member raises, by type: a bad CRC or header
#: (BadZipFile), a damaged compressed stream (zlib, lzma), a cut-off archive
#: (EOFError), an unknown compression method (NotImplementedError), an
#: encrypted member (RuntimeError).
MEMBER_DAMAGE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


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
    except MEMBER_DAMAGE as error:
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


def read_member(archive: zipfile.ZipFile, member: str, path: Path, *, limit: int) -> bytes:
    """The bytes of ``member``, at most ``limit`` of them, else :class:`FormatError`.

    The size a member declares bounds what zipfile unpacks, so a larger
    declaration is refused unread.
    """
    size = archive.getinfo(member).file_size
    if size > limit:
        reason = f"it would unpack to {size:,} bytes, more than the {limit:,} any such file needs"
        raise _damaged_member(path, member, reason)
    try:
        return archive.read(member)
    except MEMBER_DAMAGE as error:
        raise _damaged_member(path, member, f"{type(error).__name__}: {error}") from None


def json_object(data: bytes, member: str, path: Path) -> dict[str, Any]:
    """``data``, the content of ``member``, parsed defensively as a JSON object."""
    document = parsing.load_json(data, lambda reason: _damaged_member(path, member, reason))
    if not isinstance(document, dict):
        raise _damaged_member(path, member, "not a JSON object")
    return document


def _damaged_member(path: Path, member: str, reason: str) -> FormatError:
    return FormatError(f"{path}: its {member} is damaged ({reason}). Restore the file or save it again.")
