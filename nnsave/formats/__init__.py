"""Format handlers: each one turns one kind of object into a file and back.

A handler never picks file names or renames anything; it writes into what the
storage layer hands it (a stream or a staging path) and reads from a path that
has already been checked. Handlers register here, and the registry picks one
by a file's suffix or by the object to be saved.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import FormatError, UnsupportedObjectError
from ..storage import AtomicWrite, Digest

__all__ = [
    "FormatHandler",
    "LoadOptions",
    "register_handler",
    "handler_for_path",
    "handler_for_object",
    "registered_suffixes",
    "class_path",
]


@dataclass(frozen=True)
class LoadOptions:
    """What the caller of :func:`nnsave.load` asked for, as handlers see it."""

    safe_mode: bool = True
    compile: bool = True
    mmap_mode: str | None = None
    #: Types outside a format's own safe set that the caller approved (skops).
    approved_types: tuple[str, ...] = ()


class FormatHandler(ABC):
    """The interface every format implements."""

    #: Short name written into manifests, e.g. ``"keras"``.
    name: ClassVar[str]
    #: File suffixes this handler owns, e.g. ``(".keras",)``.
    suffixes: ClassVar[tuple[str, ...]]
    #: Library → how many leading release numbers must agree between the
    #: versions that saved a file and the installed ones (see manifest.py).
    version_strictness: ClassVar[dict[str, int]] = {}

    @abstractmethod
    def claims(self, obj: object) -> bool:
        """True if this handler is the right one for ``obj``."""

    @abstractmethod
    def write(
        self, obj: object, transaction: AtomicWrite, target: Path, *, compress: Any
    ) -> Digest:
        """Stage ``obj`` as ``target`` inside ``transaction``; return the staged digest."""

    @abstractmethod
    def check_signature(self, path: Path) -> None:
        """Raise :class:`FormatError` unless the file's first bytes fit this format."""

    @abstractmethod
    def runs_code_on_load(self, options: LoadOptions) -> bool:
        """True if reading a file of this format can execute code from it."""

    def types_needing_trust(self, path: Path) -> list[str]:
        """Types in the file that loading would build only with the caller's approval."""
        return []

    @abstractmethod
    def read(self, path: Path, options: LoadOptions) -> Any:
        """Deserialise ``path``. Only called after the trust check."""

    @abstractmethod
    def describe(self, path: Path) -> dict[str, Any]:
        """Facts about the file gathered without deserialising it."""

    def strictness_for(self, saved_class_path: str) -> dict[str, int]:
        """The version comparisons that matter for a saved object of this class."""
        return dict(self.version_strictness)


_HANDLERS: list[FormatHandler] = []


def register_handler(handler: FormatHandler) -> FormatHandler:
    """Add a handler; its suffixes must be new and start with a dot."""
    for suffix in handler.suffixes:
        if not suffix.startswith(".") or suffix != suffix.lower():
            raise ValueError(f"suffix {suffix!r} must be lower case and start with '.'")
        for existing in _HANDLERS:
            if suffix in existing.suffixes:
                raise ValueError(f"suffix {suffix!r} already belongs to {existing.name!r}")
    _HANDLERS.append(handler)
    return handler


def registered_suffixes() -> list[str]:
    return [suffix for handler in _HANDLERS for suffix in handler.suffixes]


def handler_for_path(path: Path) -> FormatHandler:
    """The handler that owns ``path``'s suffix, or :class:`FormatError`."""
    suffix = Path(path).suffix.lower()
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
    raise UnsupportedObjectError(
        f"nnsave cannot save an object of type {class_path(obj)}. "
        f"{_unsupported_hint(obj)}"
    )


def class_path(obj: object) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def is_keras_object(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] in {"keras", "tensorflow", "tf_keras"}


def keras_module() -> Any | None:
    """Keras, if the caller has imported it; nnsave never imports it just to look."""
    return sys.modules.get("keras")


def _unsupported_hint(obj: object) -> str:
    if is_keras_object(obj):
        return (
            "Save the keras.Model that holds it as a .keras file, or use "
            "tf.train.Checkpoint for bare variables."
        )
    return "It cannot be pickled; save the data it holds instead."


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
