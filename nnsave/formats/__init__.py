"""Format handlers: each one turns one kind of object into a file and back.

Handlers register here, and the registry picks one by a file's suffix (in any
letter case) or by the object to be saved. The interface they implement is
in :mod:`nnsave.formats._base`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import FormatError, UnsupportedObjectError
from ._base import FileFacts, FormatHandler, LoadOptions, Payload, SaveOptions, class_path
from ._python import is_keras_object

__all__ = [
    "FormatHandler",
    "FileFacts",
    "LoadOptions",
    "SaveOptions",
    "Payload",
    "register_handler",
    "handler_for_path",
    "handler_for_object",
    "handler_named",
    "registered_handlers",
    "registered_suffixes",
    "class_path",
]

_HANDLERS: list[FormatHandler] = []


def register_handler(handler: FormatHandler) -> FormatHandler:
    """Add a handler; its suffixes must be new, lower case and start with a dot."""
    for suffix in handler.suffixes:
        if not suffix.startswith(".") or suffix != suffix.lower():
            raise ValueError(f"suffix {suffix!r} must be lower case and start with '.'")
        for existing in _HANDLERS:
            if suffix in existing.suffixes:
                raise ValueError(f"suffix {suffix!r} already belongs to {existing.name!r}")
    _HANDLERS.append(handler)
    return handler


def registered_handlers() -> list[FormatHandler]:
    return list(_HANDLERS)


def registered_suffixes() -> list[str]:
    return [suffix for handler in _HANDLERS for suffix in handler.suffixes]


def handler_named(name: str) -> FormatHandler | None:
    """The handler whose manifest name is ``name``, if any."""
    return next((handler for handler in _HANDLERS if handler.name == name), None)


def handler_for_path(path: Path) -> FormatHandler:
    """The handler that owns ``path``'s suffix (in any case), or :class:`FormatError`."""
    suffix = (path if hasattr(path, "suffix") else Path(path)).suffix.lower()
    for handler in _HANDLERS:
        if suffix in handler.suffixes:
            return handler
    raise FormatError(
        f"{path}: nnsave does not know the suffix {suffix or '(none)'!r}. "
        f"Use one of {', '.join(registered_suffixes())}: .keras for Keras models "
        f"(.safetensors for large ones), .joblib or .skops for scikit-learn "
        f"estimators, .joblib for arrays and other Python objects."
    )


def handler_for_object(obj: object) -> FormatHandler:
    """The handler that saves ``obj``, or :class:`UnsupportedObjectError`."""
    for handler in _HANDLERS:
        if handler.claims(obj):
            return handler
    hint = (
        "Save the keras.Model that holds it as a .keras file, or use tf.train.Checkpoint for bare variables."
        if is_keras_object(obj)
        else "It cannot be pickled; save the data it holds instead."
    )
    raise UnsupportedObjectError(f"nnsave cannot save an object of type {class_path(obj)}. {hint}")


def _register_builtin_handlers() -> None:
    from .joblib_pickle import JoblibHandler
    from .keras_archive import KerasHandler
    from .keras_safetensors import KerasSafetensorsHandler
    from .skops_archive import SkopsHandler

    # Order matters where no suffix decides: the first handler that claims an
    # object wins, so Keras models go to .keras, and joblib claims any
    # picklable object before skops does.
    register_handler(KerasHandler())
    register_handler(JoblibHandler())
    register_handler(SkopsHandler())
    register_handler(KerasSafetensorsHandler())


_register_builtin_handlers()
