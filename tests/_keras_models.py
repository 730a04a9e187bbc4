"""What the Keras format tests share: a backend-agnostic ``keras`` fixture, and comparisons.

The tests run under whichever backend ``KERAS_BACKEND`` names (TensorFlow by
default, JAX in the second leg). Only TensorFlow needs op determinism, and
``nnsave.seed_everything`` imports TensorFlow, so under other backends the
fixture seeds Keras alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

import nnsave
from nnsave import UnverifiedFileWarning


@pytest.fixture
def keras():
    import keras

    if keras.config.backend() == "tensorflow":
        nnsave.seed_everything(0)
    else:
        keras.utils.set_random_seed(0)
    return keras


def backend() -> str:
    import keras

    return keras.config.backend()


def arrays(values) -> list[np.ndarray]:
    import keras

    return [np.asarray(keras.ops.convert_to_numpy(value)) for value in values]


def same_arrays(first, second) -> bool:
    """Equal in number, dtype and every bit (NaNs in the same places count as equal)."""
    first, second = arrays(first), arrays(second)
    return len(first) == len(second) and all(
        a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        for a, b in zip(first, second)
    )


def same_weights(model, restored) -> bool:
    """The same variables bit for bit, in whatever order and under whatever names the layers gave them.

    Layers named automatically get new names when a model is rebuilt in the
    same process, and quantized layers create their variables in another
    order when built from a config, so neither order nor path is compared.
    """

    def fingerprints(owner):
        return sorted((str(a.dtype), a.shape, a.tobytes()) for a in arrays(owner.weights))

    return fingerprints(model) == fingerprints(restored)


def same_predictions(model, restored, inputs) -> bool:
    import keras

    ours = keras.tree.flatten(model.predict(inputs, verbose=0))
    theirs = keras.tree.flatten(restored.predict(inputs, verbose=0))
    return same_arrays(ours, theirs)


def same_optimizer_state(model, restored) -> bool:
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built:
        return True
    return same_arrays(optimizer.variables, restored.optimizer.variables)


def load_unverified(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        return nnsave.load(path, **kwargs)


def run_fresh(code: str, cwd: Path) -> str:
    """Run ``code`` in a new Python process with this backend and keys; return its stdout."""
    environment = {**os.environ, "KERAS_BACKEND": backend(), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
