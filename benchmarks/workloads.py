"""The workloads: what gets saved, built the same way in every run.

Every builder is seeded, so each run saves the same bytes. The heavy payloads
(Keras weights, the forest, the array dict) are built once per workload in the
parent process, which imports TensorFlow but never runs a TensorFlow op; each
measured run is a forked child that inherits them (see :mod:`benchmarks.run`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "MiB",
    "Workload",
    "WORKLOADS",
    "QUICK_WORKLOADS",
    "dense_stack_layout",
    "dense_stack_weights",
    "build_dense_stack",
    "fit_forest",
    "make_arrays",
    "fingerprint",
]

MiB = 1 << 20
_FLOAT32 = 4


@dataclass(frozen=True)
class Workload:
    """One thing to save.

    Attributes
    ----------
    name : str
        Short unique name, e.g. ``"keras-100MB"``.
    kind : str
        ``"keras"``, ``"forest"`` or ``"arrays"``; routes declare the kinds they apply to.
    nominal_bytes : int
        The size the workload aims at.
    params : dict
        Builder arguments (layer width and count, forest shape, array count).
    """

    name: str
    kind: str
    nominal_bytes: int
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        p = self.params
        if self.kind == "keras":
            return f"Sequential of {p['layers']} Dense({p['width']}) layers, float32"
        if self.kind == "forest":
            return (
                f"RandomForestRegressor, {p['n_estimators']} fully grown trees on "
                f"{p['n_samples']:,} samples x {p['n_features']} features"
            )
        return (
            f"dict of {p['count']} arrays of {p['array_bytes'] // MiB} MiB: one in four "
            "float32 features (random normal), the rest uint8 digit images"
        )


def dense_stack_layout(target_bytes: int, *, min_layers: int = 4, max_width: int = 4096) -> tuple[int, int]:
    """Width and layer count of a stack of square Dense layers holding about ``target_bytes``.

    The width is the largest power of two (at most ``max_width``) that still
    leaves room for ``min_layers`` layers (biases may overshoot by 1%); the
    count then fills the target.

    >>> dense_stack_layout(1 << 20)
    (256, 4)
    >>> dense_stack_layout(1 << 30)
    (4096, 16)
    """
    width = 64
    while width * 2 <= max_width and _layer_bytes(width * 2) * min_layers <= target_bytes * 1.01:
        width *= 2
    layers = max(1, round(target_bytes / _layer_bytes(width)))
    return width, layers


def _layer_bytes(width: int) -> int:
    return (width * width + width) * _FLOAT32


def _keras(name: str, target: int) -> Workload:
    width, layers = dense_stack_layout(target)
    return Workload(name, "keras", target, {"width": width, "layers": layers})


def _forest(name: str, target: int, n_samples: int, n_estimators: int) -> Workload:
    params = {"n_samples": n_samples, "n_features": 20, "n_estimators": n_estimators}
    return Workload(name, "forest", target, params)


def _arrays(name: str, target: int, count: int) -> Workload:
    return Workload(name, "arrays", target, {"count": count, "array_bytes": target // count})


#: The full run. A regression forest of fully grown trees takes about 3.5 MiB
#: per tree on 40,000 samples, so 29 trees make about 100 MiB.
WORKLOADS = [
    _keras("keras-1MB", 1 * MiB),
    _keras("keras-10MB", 10 * MiB),
    _keras("keras-100MB", 100 * MiB),
    _keras("keras-1GB", 1024 * MiB),
    _forest("forest-100MB", 100 * MiB, n_samples=40_000, n_estimators=29),
    _arrays("arrays-1GB", 1024 * MiB, count=16),
]

#: ``--quick``: small sizes only, for CI.
QUICK_WORKLOADS = [
    _keras("keras-1MB", 1 * MiB),
    _keras("keras-10MB", 10 * MiB),
    _forest("forest-5MB", 5 * MiB, n_samples=10_000, n_estimators=6),
    _arrays("arrays-32MB", 32 * MiB, count=8),
]


def dense_stack_weights(width: int, layers: int, seed: int = 0) -> list[np.ndarray]:
    """Glorot-uniform kernels and zero biases, in ``model.get_weights()`` order, made with numpy only."""
    rng = np.random.default_rng(seed)
    limit = np.float32(np.sqrt(6.0 / (width + width)))
    weights = []
    for _ in range(layers):
        kernel = rng.random((width, width), dtype=np.float32)
        kernel -= np.float32(0.5)  # in place: no temporaries, so each array keeps its own mapping
        kernel *= 2 * limit
        weights += [kernel, np.zeros(width, dtype=np.float32)]
    return weights


def build_dense_stack(keras: Any, width: int, layers: int) -> Any:
    """The model, built fast with zero kernels (its weights are about to be replaced).

    Each layer then gets back Keras's default kernel initializer, so that a
    saved config names it as a real model's does, and ``load_model`` pays for
    running it, as it does for a real model.
    """
    model = keras.Sequential(
        [keras.Input((width,))]
        + [keras.layers.Dense(width, kernel_initializer="zeros", name=f"dense_{i}") for i in range(layers)],
        name="dense_stack",
    )
    for layer in model.layers:
        layer.kernel_initializer = keras.initializers.get("glorot_uniform")
    return model


def fit_forest(n_samples: int, n_features: int, n_estimators: int, seed: int = 0) -> Any:
    """A regression forest of fully grown trees: its size grows with the sample count."""
    from sklearn.datasets import make_regression
    from sklearn.ensemble import RandomForestRegressor

    X, y = make_regression(n_samples=n_samples, n_features=n_features, noise=10.0, random_state=seed)
    forest = RandomForestRegressor(n_estimators=n_estimators, max_features="sqrt", random_state=seed, n_jobs=1)
    return forest.fit(X.astype(np.float32), y)


def make_arrays(count: int, array_bytes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A data set as a dict: one array in four is float32 features, the rest uint8 images.

    The features are random normal numbers, which no compressor shrinks. The
    images are scikit-learn's handwritten digits, scaled up to 32x32 like
    MNIST, which compress well.

    >>> arrays = make_arrays(4, 8192)
    >>> sorted(arrays), [a.nbytes for a in arrays.values()]
    (['features_0', 'images_0', 'images_1', 'images_2'], [8192, 8192, 8192, 8192])
    """
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    digits = load_digits().images  # 1797 images of 8x8 pixels, values 0..16
    digits = (np.kron(digits, np.ones((1, 4, 4))) * 15).astype(np.uint8)
    arrays: dict[str, np.ndarray] = {}
    for index in range(count):
        if index % 4 == 0:
            arrays[f"features_{index // 4}"] = rng.standard_normal(array_bytes // _FLOAT32, dtype=np.float32)
        else:
            images = np.resize(digits, (array_bytes // digits[0].nbytes, 32, 32))
            arrays[f"images_{index - index // 4 - 1}"] = images
    return dict(sorted(arrays.items()))


_STRIDE = 4099


def fingerprint(kind: str, obj: Any) -> list[float]:
    """A few numbers that change if any array lost or reordered its values.

    ``kind`` is a workload kind, or ``"weights"`` for a list of numpy arrays in
    ``model.get_weights()`` order (which gives the same numbers as the model).

    Used after each load (outside the timed section) to check the route really
    restored the workload.
    """
    if kind == "keras":
        import keras

        # A strided sample taken by TensorFlow: no copy of the whole variable.
        arrays = [keras.ops.convert_to_numpy(keras.ops.reshape(w, (-1,))[::_STRIDE]) for w in obj.weights]
        return [round(float(a.astype(np.float64).sum()), 3) for a in arrays]
    if kind == "weights":
        arrays = [np.asarray(a).ravel()[::_STRIDE] for a in obj]
        return [round(float(a.astype(np.float64).sum()), 3) for a in arrays]
    if kind == "forest":
        return [float(sum(tree.tree_.node_count for tree in obj.estimators_)),
                float(sum(tree.tree_.threshold[:64].sum() for tree in obj.estimators_))]
    arrays = [obj[key] for key in sorted(obj)]
    return [round(float(a.ravel()[::_STRIDE].astype(np.float64).sum()), 3) for a in arrays]
