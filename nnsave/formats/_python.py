"""What the formats for estimators, arrays and plain Python objects share."""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, UnknownClassError
from ._base import FormatHandler, class_path, module_if_imported

__all__ = [
    "PythonObjectHandler",
    "code_references",
    "first_difference",
    "holds_sklearn_objects",
    "is_keras_object",
    "json_ready",
    "missing_reference",
    "quoted",
    "read_failure",
]

_UNPICKLABLE_TYPES = (
    types.ModuleType,
    types.GeneratorType,
    types.CoroutineType,
    types.FrameType,
    io.IOBase,
)
#: Lists longer than this are not copied into a manifest (a manifest stays small).
_MAX_LISTED = 1000
#: A foreign error's text is cut to this length in nnsave's messages.
_MAX_QUOTED = 200


def is_keras_object(obj: object) -> bool:
    return type(obj).__module__.split(".")[0] in {"keras", "tensorflow", "tf_keras"}


class PythonObjectHandler(FormatHandler):
    """Claims what is not Keras; records scikit-learn's version and expectations."""

    extra = "sklearn"

    def claims(self, obj: object) -> bool:
        return not is_keras_object(obj) and not isinstance(obj, _UNPICKLABLE_TYPES)

    def versions(self, obj: object) -> list[str]:
        """The format's libraries, and scikit-learn's when ``obj`` holds its objects."""
        libraries = list(self.version_strictness)
        if holds_sklearn_objects(obj):
            libraries.append("scikit-learn")
        return libraries

    def strictness_for(self, saved_class_path: str) -> dict[str, int]:
        # scikit-learn supports no loading across versions, not even patch
        # releases. A manifest records its version only for files that hold
        # scikit-learn objects (see versions), and a library the manifest does
        # not record is never compared, so the rule can stand for every file.
        return {**self.version_strictness, "scikit-learn": 3}

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
    #: The top-level packages of every class and function referred to.
    packages: set[str] = field(default_factory=set)


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
            self.found.packages.add(str(obj.__module__).split(".")[0])
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


def holds_sklearn_objects(obj: object) -> bool:
    """True if ``obj`` is, or holds, an instance of a scikit-learn class or a subclass of one.

    Only a process that imported scikit-learn can hold its objects, so the
    walk over ``obj`` happens only then, and only for objects that are not
    scikit-learn's own (a dict of estimators, say).
    """
    if class_path(obj).startswith("sklearn."):
        return True
    sklearn_base = module_if_imported("sklearn.base")
    if sklearn_base is None:
        return False
    if isinstance(obj, sklearn_base.BaseEstimator):
        return True
    return "sklearn" in code_references(obj).packages


def missing_reference(error: BaseException) -> tuple[str, str | None] | None:
    """``(module, name)`` of what unpickling or skops failed to import (name None: the module).

    Read from the exceptions' attributes, never their messages: first
    ``ModuleNotFoundError.name``, and ``AttributeError.name`` and ``.obj``,
    which ``getattr`` sets on a module, along the chain of exceptions that
    ``error`` was raised from (pickle replaces the AttributeError of
    ``getattr`` with one of its own); then, for a module whose own
    ``__getattr__`` raised (numpy's does), the arguments of the unpickler's
    ``find_class(module, name)``, pickle's documented hook, in the traceback.
    """
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, ModuleNotFoundError) and link.name:
            return link.name, None
        owner = link.obj if isinstance(link, AttributeError) else None
        if isinstance(owner, types.ModuleType) and isinstance(link, AttributeError) and link.name:
            return owner.__name__, link.name
        link = link.__cause__ or link.__context__
    if isinstance(error, AttributeError):
        trace = error.__traceback__
        while trace is not None:
            frame = trace.tb_frame
            module, name = frame.f_locals.get("module"), frame.f_locals.get("name")
            if frame.f_code.co_name == "find_class" and isinstance(module, str) and isinstance(name, str):
                return module, name
            trace = trace.tb_next
    return None


def _unknown_class(path: Path, module: str, name: str | None) -> UnknownClassError:
    """The error for a file that needs ``module.name`` (or ``module``), which cannot be imported."""
    versions_hint = "(nnsave inspect lists the versions its manifest records)"
    if module == "__main__":
        return UnknownClassError(
            f"{path} needs {name!r}, which was defined in the script or notebook that "
            "saved the file (its __main__), and this program does not define it. Define "
            "or import it before loading (in a notebook, run the cell that defines it); "
            "better, move it into a module that both programs import, and save the file again."
        )
    if name is None:
        return UnknownClassError(
            f"{path} needs the module {module!r}, which cannot be imported here. Install "
            f"the package that provides it, at the version that saved the file "
            f"{versions_hint}, and load again."
        )
    return UnknownClassError(
        f"{path} needs {module}.{name}, but the installed {module} has no {name!r}: the "
        f"file was probably saved with another version of it. Install the version that "
        f"saved it {versions_hint} and load again."
    )


def read_failure(path: Path, error: BaseException) -> FormatError:
    """The nnsave error for a deserialiser's failure: a class it cannot import, or damage.

    Damaged bytes and files from other library versions fail with every kind
    of exception, raised from inside the library or from the saved classes'
    own code; they are told apart by type only where the type says something.
    """
    missing = missing_reference(error)
    if missing is not None:
        return _unknown_class(path, *missing)
    return FormatError(
        f"{path} could not be rebuilt ({quoted(error)}). Either it is "
        "damaged, or it needs other versions of the libraries that saved it (nnsave "
        "inspect lists them). Restore it from a backup, or install those versions."
    )


def quoted(error: BaseException) -> str:
    """``TypeName: message`` of a foreign error, cut short, for nnsave's own messages."""
    text = str(error).rstrip(".")
    if len(text) > _MAX_QUOTED:
        text = text[: _MAX_QUOTED - 3] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


_ATOMS = (type(None), bool, int, float, complex, str, bytes, range, slice, np.generic, np.dtype)


def first_difference(expected: object, actual: object) -> str | None:
    """Where ``actual`` differs from ``expected``, value for value, or None if nowhere.

    Both are walked as pickle sees them (each object's ``__reduce_ex__``):
    arrays compare bit for bit (structured ones field by field, since the
    padding between fields holds arbitrary bytes), floats by value (NaN
    equals NaN), classes and functions by identity. Use it to check that a
    rebuilt object is the one that was saved.
    """
    pending: list[tuple[object, object, str]] = [(expected, actual, "the object")]
    compared: set[tuple[int, int]] = set()
    alive: list[tuple[object, object]] = []  # so that no id in `compared` is reused
    while pending:
        a, b, where = pending.pop()
        if type(a) is not type(b):
            return f"{where}: a {type(a).__name__} became a {type(b).__name__}"
        if isinstance(a, _ATOMS):
            both_nan = isinstance(a, (float, np.floating)) and math.isnan(a) and math.isnan(b)  # type: ignore[arg-type]
            if a != b and not both_nan:
                return f"{where}: {_short_repr(a)} became {_short_repr(b)}"
            continue
        if (id(a), id(b)) in compared:
            continue
        compared.add((id(a), id(b)))
        alive.append((a, b))
        try:
            pairs = list(_parts(a, b, where))
        except _Differs as difference:
            return str(difference)
        pending.extend(reversed(pairs))
    return None


class _Differs(Exception):
    pass


# What each item of a __reduce_ex__ tuple is, for messages.
_REDUCED_PARTS = ("(constructor)", "(arguments)", "(state)", "(items)", "(items)", "(state setter)")


def _parts(a: Any, b: Any, where: str) -> Iterator[tuple[object, object, str]]:
    """The pairs of parts of ``a`` and ``b`` that must be equal; raise _Differs if their shape differs."""
    if isinstance(a, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            raise _Differs(f"{where}: an array of {a.dtype} {a.shape} became {b.dtype} {b.shape}")
        if a.dtype.names:
            yield from ((a[name], b[name], f"{where}[{name!r}]") for name in a.dtype.names)
        elif a.dtype.kind == "O":
            yield from ((p, q, f"{where}[{i}]") for i, (p, q) in enumerate(zip(a.flat, b.flat)))
        elif np.ascontiguousarray(a).tobytes() != np.ascontiguousarray(b).tobytes():
            raise _Differs(f"{where}: the array's values differ")
        return
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise _Differs(f"{where}: {len(a)} items became {len(b)}")
        yield from ((p, q, f"{where}[{i}]") for i, (p, q) in enumerate(zip(a, b)))
        return
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise _Differs(f"{where}: the keys {sorted(map(str, a))[:5]} became {sorted(map(str, b))[:5]}")
        yield from ((a[key], b[key], f"{where}[{key!r}]") for key in a)
        return
    if isinstance(a, (set, frozenset)):
        if a != b:
            raise _Differs(f"{where}: the set's members differ")
        return
    sparse = module_if_imported("scipy.sparse")
    if sparse is not None and sparse.issparse(a):
        # Compared by their entries: their other attributes cache facts about them.
        if a.shape != b.shape or a.dtype != b.dtype:
            raise _Differs(f"{where}: a sparse {a.dtype} {a.shape} became {b.dtype} {b.shape}")
        entries_a, entries_b = a.tocoo(), b.tocoo()
        for part in ("row", "col", "data"):
            yield getattr(entries_a, part), getattr(entries_b, part), f"{where} (sparse {part})"
        return
    if isinstance(a, (np.random.RandomState, np.random.Generator, np.random.BitGenerator)):
        # The stream a generator draws is fixed by its bit generator's state;
        # how it was seeded (kept only for spawning) need not survive.
        yield _generator_state(a), _generator_state(b), f"{where} (random state)"
        return
    if isinstance(a, (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType)):
        if a is not b:
            raise _Differs(f"{where}: {_short_repr(a)} became another object of that name")
        return
    reduced_a, reduced_b = _reduced(a), _reduced(b)
    if reduced_a is None or reduced_b is None or len(reduced_a) != len(reduced_b):
        if a != b:
            raise _Differs(f"{where}: {_short_repr(a)} became {_short_repr(b)}")
        return
    for index, (part_a, part_b) in enumerate(zip(reduced_a, reduced_b)):
        if index == 2 and isinstance(part_a, dict) and isinstance(part_b, dict) and part_a.keys() == part_b.keys():
            yield from ((part_a[name], part_b[name], f"{where}.{name}") for name in part_a)
        else:
            yield part_a, part_b, f"{where} {_REDUCED_PARTS[index]}"


def _generator_state(generator: Any) -> dict[str, Any]:
    if isinstance(generator, np.random.RandomState):
        return generator.get_state(legacy=False)  # includes the cached normal draw
    bit_generator = generator if isinstance(generator, np.random.BitGenerator) else generator.bit_generator
    return bit_generator.state


def _reduced(obj: Any) -> tuple[Any, ...] | None:
    """What pickle stores for ``obj`` (iterators of items made lists), or None if it cannot say."""
    try:
        reduced = obj.__reduce_ex__(pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an object may refuse to be reduced in any way
        return None
    if not isinstance(reduced, tuple):
        return None  # a global's name: compared by identity above
    return tuple(list(part) if isinstance(part, Iterator) else part for part in reduced)


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
