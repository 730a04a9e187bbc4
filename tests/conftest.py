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


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """A real S3 API on 127.0.0.1: moto's server, in a process of its own, on a free port."""
    from _local_s3 import start_moto_server

    server, endpoint = start_moto_server(tmp_path_factory.mktemp("moto") / "server.log")
    yield endpoint
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def s3_environment(s3_endpoint, monkeypatch):
    """The standard AWS variables pointing at the local server, as a user would set them."""
    variables = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",  # never ask a metadata service for credentials
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


@pytest.fixture
def bucket(s3_environment, request):
    """A fresh, empty bucket on the local S3 server; its URL, ``s3://name``."""
    import re
    import uuid

    import fsspec

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:8]
    fsspec.filesystem("s3").mkdir(name)
    return f"s3://{name}"


@pytest.fixture
def unsafe_switch_on(keras):
    """Keras's global switch, as a notebook or library might have left it; restored afterwards."""
    from keras.src.backend.common import global_state  # only to put the switch back

    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    yield
    global_state.set_global_attribute("safe_mode_saving", before)
