"""Defensive reading of the JSON documents nnsave finds in files.

Every document nnsave reads (manifests, checkpoint indexes, ``config.json``
inside a ``.keras`` archive, safetensors headers) may have been written by an
attacker. Valid JSON can still be hostile: nested ten thousand levels deep, an
integer of five thousand digits, a list where a string belongs. The functions
here turn each of those into one exception type chosen by the caller, whose
message names the file, instead of a ``RecursionError`` or ``AttributeError``
from deep inside the caller's code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["MAX_DEPTH", "load_json", "field", "optional_field", "check_depth"]

#: Deeper documents are refused; nnsave's own and Keras's are a few dozen deep.
MAX_DEPTH = 200

T = TypeVar("T")
ErrorFactory = Callable[[str], Exception]


def load_json(data: bytes | str, fail: ErrorFactory, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data``; any problem becomes ``fail(reason)``.

    Parameters
    ----------
    data : bytes or str
        UTF-8 JSON text.
    fail : callable
        Builds the exception to raise from a short reason, for example
        ``lambda reason: FormatError(f"{path}: config.json is damaged ({reason}).")``.
    max_depth : int
        The deepest nesting of lists and objects accepted.

    Examples
    --------
    >>> load_json(b'{"a": [1, 2]}', ValueError)
    {'a': [1, 2]}
    >>> load_json("[" * 300 + "]" * 300, ValueError)
    Traceback (most recent call last):
    ValueError: nested more than 200 levels deep
    """
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        document = json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError, TypeError) as error:
        # ValueError covers bad syntax, NaN and integers longer than Python
        # converts (4,300 digits); RecursionError covers absurd nesting.
        raise fail(f"not valid JSON: {_short(error)}") from None
    check_depth(document, fail, max_depth)
    return document


def check_depth(document: Any, fail: ErrorFactory, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``fail`` if lists and objects in ``document`` nest deeper than ``max_depth``."""
    pending = [(document, 0)]
    while pending:
        node, depth = pending.pop()
        if depth > max_depth:
            raise fail(f"nested more than {max_depth} levels deep")
        if isinstance(node, dict):
            pending.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            pending.extend((value, depth + 1) for value in node)


def field(document: Any, name: str, kind: type[T] | tuple[type, ...], fail: ErrorFactory) -> T:
    """``document[name]``, which must be of ``kind`` (``bool`` never counts as ``int``).

    >>> field({"size": 3}, "size", int, ValueError)
    3
    >>> field({"size": True}, "size", int, ValueError)
    Traceback (most recent call last):
    ValueError: field 'size' is missing or not int
    """
    if not isinstance(document, dict):
        raise fail("not a JSON object")
    value = document.get(name)
    if not _is_kind(value, kind):
        raise fail(f"field {name!r} is missing or not {_kind_name(kind)}")
    return value  # type: ignore[return-value]


def optional_field(document: Any, name: str, kind: type[T] | tuple[type, ...], fail: ErrorFactory) -> T | None:
    """Like :func:`field`, but a missing key or ``null`` gives None."""
    if not isinstance(document, dict):
        raise fail("not a JSON object")
    if document.get(name) is None:
        return None
    return field(document, name, kind, fail)


def _is_kind(value: Any, kind: type | tuple[type, ...]) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."
