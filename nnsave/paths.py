"""What nnsave accepts as a path, and how it reads one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError

__all__ = ["PathLike", "user_path"]

PathLike = str | bytes | os.PathLike[str] | os.PathLike[bytes]


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
            f"{argument} is an open file object ({type(path).__name__}); nnsave writes a "
            "manifest beside the file, so it needs a path. Give the file's path instead."
        )
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise InvalidArgumentError(
            f"{argument} must be a str, bytes or os.PathLike naming a file, not {type(path).__name__}."
        )
    text = os.fsdecode(os.fspath(path))
    if not text:
        raise InvalidArgumentError(f"{argument} is empty; give the path of a file.")
    if "://" in text:
        raise InvalidArgumentError(
            f"{text}: nnsave reads and writes local files; URLs such as s3:// are not "
            "supported. Copy the file to a local path first."
        )
    return Path(text).expanduser()
