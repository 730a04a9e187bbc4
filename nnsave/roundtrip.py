"""Save an object, load it back, and compare what both predict."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import api, objectstore
from .errors import InvalidArgumentError, NNSaveError
from .formats import class_path, handler_for_object, handler_for_path
from .objectstore import ObjectPath
from .paths import location

__all__ = ["RoundtripReport", "roundtrip"]


@dataclass(frozen=True)
class RoundtripReport:
    """The result of :func:`nnsave.roundtrip`.

    Attributes
    ----------
    ok : bool
        True if every compared output agreed within the tolerances.
    max_abs_diff : float
        The largest absolute difference over all compared outputs.
    compared : dict
        Method name (``"predict"``, ``"predict_proba"``) → its largest
        absolute difference over every output the method returns.
    format : str
        The format the object went through.
    size : int
        The saved file's size in bytes.
    """

    ok: bool
    max_abs_diff: float
    compared: dict[str, float]
    format: str
    size: int


def roundtrip(
    obj: Any,
    X: Any,
    *,
    suffix: str | None = None,
    rtol: float = 0.0,
    atol: float = 0.0,
    safe_mode: bool = True,
    compile: bool = True,
    custom_objects: Mapping[str, Any] | None = None,
    path: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> RoundtripReport:
    """Save ``obj`` to a temporary file, load it back and compare its predictions.

    Parameters
    ----------
    obj : keras.Model or estimator
        Anything with ``predict``; ``predict_proba`` is compared too where
        present. Outputs may be arrays, or lists, tuples and dicts of arrays
        (multi-output Keras models).
    X : array-like or dict
        Inputs to predict on (a list or dict of arrays for a multi-input model).
    suffix : str, optional
        The format to go through, such as ``".safetensors"``; by default the
        object's usual one (``.keras`` or ``.joblib``).
    rtol, atol : float, default 0.0
        Tolerances as in :func:`numpy.allclose`; the defaults demand equality.
    safe_mode, compile, custom_objects
        Passed to :func:`nnsave.load`.
    path : str, os.PathLike or URL, optional
        Go through this file instead of a temporary one, for instance an
        object store's URL, to check the whole way there and back; the file
        is left in place. Its suffix chooses the format.
    storage_options : dict, optional
        For a URL: options for fsspec, as :func:`nnsave.save` takes them.

    Returns
    -------
    RoundtripReport

    Examples
    --------
    >>> import nnsave
    >>> from sklearn.linear_model import LinearRegression
    >>> model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    >>> report = nnsave.roundtrip(model, [[3.0]])
    >>> report.ok, report.format, report.max_abs_diff
    (True, 'joblib', 0.0)
    """
    if not callable(getattr(obj, "predict", None)):
        raise InvalidArgumentError(f"roundtrip compares predictions, but a {class_path(obj)} has no predict method.")
    if path is not None and suffix is not None:
        raise InvalidArgumentError("roundtrip takes suffix= or path=, not both: the path's suffix is the format.")
    destination = location(path, storage_options) if path is not None else None
    if destination is not None:
        handler = handler_for_path(destination)
    else:
        handler = handler_for_path(Path(f"model{suffix}")) if suffix else handler_for_object(obj)
    methods = [m for m in ("predict", "predict_proba") if callable(getattr(obj, m, None))]
    is_keras = handler.name.startswith("keras")
    with tempfile.TemporaryDirectory(prefix="nnsave-roundtrip-") as folder:
        target = destination or Path(folder) / f"roundtrip{handler.suffixes[0]}"
        try:
            api.save(obj, target)
            size = objectstore.size(target) if isinstance(target, ObjectPath) else target.stat().st_size
            restored = api.load(target, safe_mode=safe_mode, compile=compile, custom_objects=custom_objects)
        except NNSaveError as error:
            if destination is None:  # the temporary file means nothing to the caller; name their object
                error.args = (str(error).replace(str(target), f"the round trip of your {class_path(obj)}"), *error.args[1:])
            raise
        outputs = {
            method: (_predict(obj, method, X, is_keras), _predict(restored, method, X, is_keras)) for method in methods
        }
    compared = {method: _largest_difference(*pair) for method, pair in outputs.items()}
    ok = all(_agree(*pair, rtol, atol) for pair in outputs.values())
    return RoundtripReport(ok=ok, max_abs_diff=max(compared.values()), compared=compared, format=handler.name, size=size)


def _predict(model: Any, method: str, X: Any, is_keras: bool) -> Any:
    function = getattr(model, method)
    return function(X, verbose=0) if is_keras else function(X)


def _leaves(output: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every array in a nested output, with where it sits (``[out_a]``, ``[1]``)."""
    if isinstance(output, Mapping):
        for key in sorted(output, key=str):
            yield from _leaves(output[key], f"{where}[{key!r}]")
    elif isinstance(output, (list, tuple)):
        for index, item in enumerate(output):
            yield from _leaves(item, f"{where}[{index}]")
    else:
        yield where, np.asarray(output)


def _pairs(before: Any, after: Any) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """The outputs leaf by leaf, or None if their structures differ."""
    left, right = list(_leaves(before)), list(_leaves(after))
    if [where for where, _ in left] != [where for where, _ in right]:
        return None
    return [(a, b) for (_, a), (_, b) in zip(left, right)]


def _largest_difference(before: Any, after: Any) -> float:
    pairs = _pairs(before, after)
    if pairs is None:
        return float("inf")
    largest = 0.0
    for a, b in pairs:
        if a.shape != b.shape:
            return float("inf")
        if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
            if not np.array_equal(a, b):
                return float("inf")
            continue
        difference = np.abs(a.astype(np.float64) - b.astype(np.float64))
        largest = max(largest, float(np.max(difference, initial=0.0)))
    return largest


def _agree(before: Any, after: Any, rtol: float, atol: float) -> bool:
    pairs = _pairs(before, after)
    if pairs is None:
        return False
    for a, b in pairs:
        if a.shape != b.shape:
            return False
        if a.dtype.kind not in "biuf" or b.dtype.kind not in "biuf":
            if not np.array_equal(a, b):
                return False
        elif not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            return False
    return True
