"""Checks on zip archives (.keras, .skops) made before any member is extracted."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from ..errors import FormatError, UntrustedFileError

__all__ = ["ZIP_MAGIC", "open_audited_zip", "require_zip"]

ZIP_MAGIC = b"PK\x03\x04"
_MAX_MEMBERS = 10_000
# A deflated member that expands more than this is treated as a zip bomb.
_MAX_COMPRESSION_RATIO = 200
_MAX_TOTAL_UNCOMPRESSED = 64 << 30


def require_zip(path: Path, kind: str, remedy: str) -> None:
    """Raise :class:`FormatError` unless ``path`` starts like a zip archive."""
    with open(path, "rb") as handle:
        head = handle.read(len(ZIP_MAGIC))
    if head != ZIP_MAGIC:
        raise FormatError(
            f"{path} is not {kind}: a {path.suffix} file is a zip, and this one starts "
            f"with {head!r}. {remedy}"
        )


def open_audited_zip(path: Path, *, required_member: str, kind: str, suffix: str) -> zipfile.ZipFile:
    """Open ``path`` as a zip, refusing it if it looks hostile or is not a ``kind``.

    Raises :class:`FormatError` if it is no zip or lacks ``required_member``,
    and :class:`UntrustedFileError` for path-traversal names and zip bombs.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, ValueError) as error:
        raise FormatError(f"{path} is not a valid {suffix} archive: {error}") from None
    try:
        _audit(archive, path)
        if required_member not in archive.namelist():
            raise FormatError(f"{path} is a zip archive but not a {kind}: it has no {required_member}.")
    except BaseException:
        archive.close()
        raise
    return archive


def _audit(archive: zipfile.ZipFile, path: Path) -> None:
    members = archive.infolist()
    if len(members) > _MAX_MEMBERS:
        raise UntrustedFileError(f"{path} has {len(members)} members; refusing to open it.")
    total = 0
    for member in members:
        name = PurePosixPath(member.filename)
        if name.is_absolute() or ".." in name.parts or "\\" in member.filename:
            raise UntrustedFileError(
                f"{path} contains the member {member.filename!r}, whose name points "
                "outside the archive (path traversal). Do not load this file."
            )
        total += member.file_size
        compressed = max(member.compress_size, 1)
        if member.file_size > (1 << 20) and member.file_size / compressed > _MAX_COMPRESSION_RATIO:
            raise UntrustedFileError(
                f"{path}: member {member.filename!r} would expand {member.file_size} "
                f"bytes from {member.compress_size} (a zip bomb). Do not load this file."
            )
    if total > _MAX_TOTAL_UNCOMPRESSED:
        raise UntrustedFileError(f"{path} would expand to {total} bytes; refusing to open it.")
