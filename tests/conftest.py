"""Fixtures shared by the unit tests: small data and small models, all seeded."""

from __future__ import annotations

import os

import pytest

import nnsave


@pytest.fixture(autouse=True, scope="session")
def _private_cache_and_key(tmp_path_factory):
    """Keep the digest cache and the signing key of every test, and of the processes
    they start, out of the home directory."""
    os.environ["NNSAVE_CACHE_DIR"] = str(tmp_path_factory.mktemp("digest-cache"))
    os.environ["NNSAVE_KEY_FILE"] = str(tmp_path_factory.mktemp("key") / "signing.key")
    os.environ.pop("NNSAVE_KEY", None)


@pytest.fixture(scope="session")
def digits():
    """A small, scaled slice of scikit-learn's bundled digits (no network)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16.0).astype("float32"), y[:300]


@pytest.fixture
def keras():
    nnsave.seed_everything(0)
    import keras

    return keras


@pytest.fixture
def trained_sequential(keras, digits):
    X, y = digits
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
    return model


@pytest.fixture
def unsafe_switch_on(keras):
    """Keras's global switch, as a notebook or library might have left it; restored afterwards."""
    from keras.src.backend.common import global_state  # only to put the switch back

    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    yield
    global_state.set_global_attribute("safe_mode_saving", before)
