"""What the formats for estimators, arrays and plain Python objects share."""

from __future__ import annotations

import contextlib
import io
import pickle
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._base import FormatHandler, class_path

__all__ = ["PythonObjectHandler", "code_references", "is_keras_object", "json_ready"]

_UNPICKLABLE_TYPES = (
    types.ModuleType,
    types.GeneratorType,
    types.CoroutineType,
    types.FrameType,
    io.IOBase,
)
#: Lists longer than this are not copied into a manifest (a manifest stays small).
_MAX_LISTED = 1000


def is_keras_object(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] in {"keras", "tensorflow", "tf_keras"}


class PythonObjectHandler(FormatHandler):
    """Claims what is not Keras; records scikit-learn's version and expectations."""

    extra = "sklearn"

    def claims(self, obj: object) -> bool:
        return not is_keras_object(obj) and not isinstance(obj, _UNPICKLABLE_TYPES)

    def versions(self, obj: object) -> list[str]:
        libraries = list(self.version_strictness)
        if class_path(obj).startswith("sklearn."):
            libraries.append("scikit-learn")
        return libraries

    def strictness_for(self, saved_class_path: str) -> dict[str, int]:
        strictness = dict(self.version_strictness)
        if saved_class_path.startswith("sklearn."):
            # scikit-learn supports no loading across versions, not even patch releases.
            strictness["scikit-learn"] = 3
        return strictness

    def expects(self, obj: object) -> dict[str, Any]:
        """``n_features_in_``, ``feature_names_in_`` and ``classes_`` of a fitted estimator."""
        facts: dict[str, Any] = {}
        for name in ("n_features_in_", "feature_names_in_", "classes_"):
            try:
                value = getattr(obj, name)
            except Exception:  # noqa: BLE001 - an estimator's property may raise anything when unfitted
                continue
            ready = json_ready(value)
            if ready is not None:
                facts[name.rstrip("_")] = ready
        return facts

    def check_saveable(self, obj: object, target: Path) -> list[str]:
        """Warn when ``obj`` uses classes or functions defined in ``__main__``."""
        found = code_references(obj).in_main
        if not found:
            return []
        return [
            f"{target}: the saved object uses {', '.join(found)}, defined in the script or "
            "notebook that is running (__main__). Another process cannot import it, so "
            "loading there fails. Move it into a module that both import, then save again."
        ]


def json_ready(value: Any) -> Any | None:
    """``value`` as JSON can hold it (numbers, strings, short lists), else None."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or len(value) > _MAX_LISTED or value.dtype.kind not in "biufUO":
            return None
        value = value.tolist()
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and len(value) <= _MAX_LISTED:
        items = [json_ready(item) for item in value]
        return None if any(item is None for item in items) else items
    return None


@dataclass
class CodeReferences:
    """Classes and functions an object refers to that another process may not find."""

    #: Defined in the running script or notebook: importable only there.
    in_main: list[str] = field(default_factory=list)
    #: Lambdas and functions defined inside other functions: importable nowhere.
    nameless: list[str] = field(default_factory=list)


class _ReferenceFinder(pickle.Pickler):
    """Pickles into nothing, noting classes and functions another process cannot import."""

    def __init__(self) -> None:
        super().__init__(_Discard(), protocol=pickle.HIGHEST_PROTOCOL)
        self.found = CodeReferences()

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray) and obj.dtype.kind != "O":
            return (_nothing, ())  # the array's bytes cannot name a class: skip them
        if isinstance(obj, (type, types.FunctionType)):
            name = f"{obj.__module__}.{obj.__qualname__}"
            if "<lambda>" in obj.__qualname__ or "<locals>" in obj.__qualname__:
                _add(self.found.nameless, name)
                return (_nothing, ())  # pickle would fail here; keep walking the rest
            if obj.__module__ == "__main__":
                _add(self.found.in_main, name)
        return NotImplemented


def _add(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(memoryview(data))


def _nothing() -> None:
    return None


def code_references(obj: object) -> CodeReferences:
    """The classes and functions ``obj`` refers to that another process may not import.

    Array data is skipped, so this costs a walk over the object, not a copy.
    An object that cannot be pickled at all reports what was found up to
    that point; saving it fails with its own error.
    """
    finder = _ReferenceFinder()
    with contextlib.suppress(Exception):  # the real save reports why pickling fails
        finder.dump(obj)
    return finder.found
