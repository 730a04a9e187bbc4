"""What nnsave accepts as a path, and how it reads one.

A local path (``str``, ``bytes``, ``os.PathLike``) becomes a
:class:`pathlib.Path` and takes the local route. A URL of an object store
(``s3://``, ``gs://``, ``az://``, ``memory://``) becomes an
:class:`nnsave.objectstore.ObjectPath`; a ``file://`` URL is a local path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .errors import InvalidArgumentError
from .objectstore import SCHEMES, ObjectPath, locate

__all__ = ["PathLike", "Location", "user_path", "location", "is_url"]

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]
#: Where a file lives: on this machine, or on an object store.
Location = Path | ObjectPath


def is_url(path: Any) -> bool:
    """True if ``path`` is a string that names a URL (``scheme://...``)."""
    return isinstance(path, str) and "://" in path


def location(path: Any, storage_options: Mapping[str, Any] | None = None, *, argument: str = "path") -> Location:
    """``path`` as a local :class:`pathlib.Path` or an :class:`~nnsave.objectstore.ObjectPath`.

    >>> location("file:///tmp/m.keras").as_posix()
    '/tmp/m.keras'
    >>> str(location("memory://run/m.keras"))
    'memory://run/m.keras'
    >>> location("ftp://host/m.keras")
    Traceback (most recent call last):
    nnsave.errors.InvalidArgumentError: ftp://host/m.keras: nnsave reaches s3://, gs://, az://, memory:// and file:// URLs, not ftp://.
    """
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise InvalidArgumentError(
            f"storage_options must be a dict of options for fsspec, not {type(storage_options).__name__}."
        )
    if isinstance(path, ObjectPath):
        if storage_options:
            raise InvalidArgumentError(f"{path} already carries its storage options; pass its URL instead.")
        return path
    if not is_url(path):
        if storage_options:
            raise InvalidArgumentError(
                f"storage_options apply to URLs such as s3://bucket/m.keras; {argument} is a local path."
            )
        return user_path(path, argument=argument)
    scheme = path.split("://", 1)[0].lower()
    if scheme == "file":
        if storage_options:
            raise InvalidArgumentError(f"{path}: storage_options do not apply to file:// URLs.")
        return user_path(unquote(urlsplit(path).path), argument=argument)
    if scheme not in SCHEMES:
        raise InvalidArgumentError(
            f"{path}: nnsave reaches s3://, gs://, az://, memory:// and file:// URLs, not {scheme}://."
        )
    return locate(path, storage_options)


def user_path(path: Any, *, argument: str = "path") -> Path:
    """``path`` as a :class:`pathlib.Path`, with ``~`` expanded.

    ``str``, ``bytes`` and any ``os.PathLike`` are accepted.

    >>> user_path(b"models/m.keras").as_posix()
    'models/m.keras'
    >>> user_path(3)
    Traceback (most recent call last):
    nnsave.errors.InvalidArgumentError: path must be a str, bytes or os.PathLike naming a file, not int.
    """
    if hasattr(path, "read") or hasattr(path, "write"):
        raise InvalidArgumentError(
            f"{argument} is an open file object ({type(path).__name__}); here nnsave needs "
            "a path or a URL. Give the file's path instead."
        )
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InvalidArgumentError(
            f"{argument} must be a str, bytes or os.PathLike naming a file, not {type(path).__name__}."
        )
    text = os.fsdecode(os.fspath(path))
    if not text:
        raise InvalidArgumentError(f"{argument} is empty; give the path of a file.")
    if "://" in text:
        raise InvalidArgumentError(f"{argument} must be a local path here, not the URL {text}.")
    return Path(text).expanduser()
