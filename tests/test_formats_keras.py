"""The Keras formats: what the manifest records, mixed precision in .keras, and damaged files.

Damaged and hostile files are fuzzed with hypothesis: whatever is cut, flipped
or rewritten in a ``.keras`` or ``.safetensors`` file, ``nnsave.load`` and
``nnsave.inspect`` either succeed or raise an nnsave error; no raw Keras,
h5py, zipfile or JSON error escapes.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from _keras_models import backend, keras, load_unverified  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnsave
from nnsave import FormatError, NNSaveError, UnportableObjectWarning
from nnsave.formats import keras_safetensors as ks
from nnsave.manifest import manifest_path

SUFFIXES = (".keras", ".safetensors")


def _two_headed(keras):
    """Two named inputs of different dtypes, two named outputs."""
    image = keras.Input((4,), name="image")
    count = keras.Input((2,), name="count", dtype="int32")
    joined = keras.layers.Concatenate()([image, keras.layers.Rescaling(1.0, dtype="float32")(count)])
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(joined)
    outputs = {"score": keras.layers.Dense(1, name="score")(hidden), "label": keras.layers.Dense(3, name="label")(hidden)}
    return keras.Model({"image": image, "count": count}, outputs, name="two_headed")


# --- what the manifest records ------------------------------------------------

@pytest.mark.parametrize("suffix", SUFFIXES)
def test_the_manifest_records_the_backend_and_its_version(tmp_path, keras, suffix):
    import importlib

    path = nnsave.save(_two_headed(keras), tmp_path / f"model{suffix}")
    versions = nnsave.inspect(path).versions
    name = backend()
    assert versions["keras_backend"] == name
    assert versions["keras"] == keras.__version__
    assert versions["numpy"] == np.__version__
    assert versions[name] == importlib.import_module(name).__version__
    if name == "jax":
        assert versions["jaxlib"] == importlib.import_module("jaxlib").__version__
    assert ("h5py" in versions) == (suffix == ".keras")
    assert not {"scikit-learn", "skops", "joblib"} & set(versions)
    other = {"tensorflow", "jax", "torch"} - {name}
    assert not other & set(versions)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_the_manifest_records_what_the_model_expects(tmp_path, keras, suffix):
    path = nnsave.save(_two_headed(keras), tmp_path / f"model{suffix}")
    expects = nnsave.inspect(path).expects
    assert expects == {
        "inputs": [  # dict inputs and outputs in Keras's order: by key
            {"name": "count", "shape": [None, 2], "dtype": "int32"},
            {"name": "image", "shape": [None, 4], "dtype": "float32"},
        ],
        "outputs": [
            {"name": "label", "shape": [None, 3], "dtype": "float32"},
            {"name": "score", "shape": [None, 1], "dtype": "float32"},
        ],
    }
    assert "image" in str(nnsave.inspect(path))


def test_a_sequential_model_records_shapes_without_automatic_names(tmp_path, keras):
    model = keras.Sequential([keras.layers.Dense(2, dtype="float16")])
    model.build((None, 5))
    expects = nnsave.inspect(nnsave.save(model, tmp_path / "model.keras")).expects
    assert expects["inputs"] == [{"shape": [None, 5], "dtype": "float16"}]  # the first layer's
    assert expects["outputs"][0]["shape"] == [None, 2]


def test_a_subclassed_model_records_nothing_it_cannot_know(tmp_path, keras):
    @keras.saving.register_keras_serializable(package="nnsave_tests")
    class Doubler(keras.Model):
        def call(self, x):
            return x * 2

    model = Doubler()
    model(np.ones((1, 3), dtype="float32"))
    assert nnsave.inspect(nnsave.save(model, tmp_path / "model.keras")).expects == {}


# --- optimizer state in .keras (mixed precision: tests/test_keras_models.py) ---

def test_a_compiled_untrained_keras_model_loads_without_a_false_alarm(tmp_path, keras):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    restored = nnsave.load(nnsave.save(model, tmp_path / "untrained.keras"))
    assert restored.compiled and len(restored.optimizer.variables) > 2


def test_optimizer_state_keras_skips_is_an_error(tmp_path, keras):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 2)), epochs=1, verbose=0)
    path = nnsave.save(model, tmp_path / "trained.keras")
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    config["compile_config"]["optimizer"] = "sgd"  # a config whose optimizer has fewer variables
    rewritten = io.BytesIO()
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(rewritten, "w") as target:
        for member in source.namelist():
            data = json.dumps(config).encode() if member == "config.json" else source.read(member)
            target.writestr(member, data)
    path.write_bytes(rewritten.getvalue())
    manifest_path(path).unlink()
    with pytest.warns(UserWarning, match="Skipping variable loading"):  # all Keras itself says
        with pytest.raises(FormatError, match=r"trained\.keras: Keras rebuilt the model but not its optimizer"):
            load_unverified(path)


def test_the_mixed_precision_warning_is_only_for_wrapped_optimizers(tmp_path, keras):
    import warnings

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()), loss="mse")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnportableObjectWarning)
        nnsave.save(model, tmp_path / "explicit.keras")


# --- damaged and hostile files ------------------------------------------------

@pytest.fixture(scope="module")
def genuine(tmp_path_factory):
    """One small trained model in each format, saved once for the whole fuzz."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"), keras.layers.Dense(2, name="out")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((8, 4)), np.ones((8, 2)), epochs=1, verbose=0)
    folder = tmp_path_factory.mktemp("genuine")
    return {suffix: nnsave.save(model, folder / f"model{suffix}").read_bytes() for suffix in SUFFIXES}


def _only_nnsave_errors(path):
    """Load and inspect ``path``; anything but success or an nnsave error fails the test."""
    for attempt in (lambda: load_unverified(path), lambda: nnsave.inspect(path)):
        try:
            attempt()
        except NNSaveError as error:
            assert path.name in str(error)


def _truncated(data, fraction):
    return data[: int(len(data) * fraction)]


def _flipped(data, positions):
    damaged = bytearray(data)
    for position in positions:
        damaged[position % len(damaged)] ^= 0xFF
    return bytes(damaged)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.floats(allow_nan=False, width=32) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def _nodes(document, path=()):
    """Every path into a JSON document."""
    yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _nodes(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from _nodes(value, (*path, index))


def _replaced(document, path, value):
    if not path:
        return value
    copy = json.loads(json.dumps(document))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return copy


def _with_config(data, suffix, config_text):
    """The genuine file with its model config replaced by ``config_text``."""
    if suffix == ".keras":
        rewritten = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(rewritten, "w") as target:
            for member in source.namelist():
                target.writestr(member, config_text if member == "config.json" else source.read(member))
        return rewritten.getvalue()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    header["__metadata__"][ks.CONFIG_KEY] = config_text
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + length :]


def _config_of(data, suffix):
    if suffix == ".keras":
        return json.loads(zipfile.ZipFile(io.BytesIO(data)).read("config.json"))
    length = int.from_bytes(data[:8], "little")
    return json.loads(json.loads(data[8 : 8 + length])["__metadata__"][ks.CONFIG_KEY])


_FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FUZZ
@given(suffix=st.sampled_from(SUFFIXES), fraction=st.floats(0.0, 0.999))
def test_truncated_files_raise_only_nnsave_errors(genuine, tmp_path_factory, suffix, fraction):
    path = tmp_path_factory.mktemp("cut") / f"model{suffix}"
    path.write_bytes(_truncated(genuine[suffix], fraction))
    _only_nnsave_errors(path)


@_FUZZ
@given(suffix=st.sampled_from(SUFFIXES), positions=st.lists(st.integers(0, 1 << 20), min_size=1, max_size=6))
def test_flipped_bytes_raise_only_nnsave_errors(genuine, tmp_path_factory, suffix, positions):
    path = tmp_path_factory.mktemp("flip") / f"model{suffix}"
    path.write_bytes(_flipped(genuine[suffix], positions))
    _only_nnsave_errors(path)


@_FUZZ
@given(suffix=st.sampled_from(SUFFIXES), choice=st.integers(0, 10_000), value=_json_values)
def test_rewritten_configs_raise_only_nnsave_errors(genuine, tmp_path_factory, suffix, choice, value):
    config = _config_of(genuine[suffix], suffix)
    nodes = list(_nodes(config))
    damaged = _replaced(config, nodes[choice % len(nodes)], value)
    path = tmp_path_factory.mktemp("config") / f"model{suffix}"
    path.write_bytes(_with_config(genuine[suffix], suffix, json.dumps(damaged)))
    _only_nnsave_errors(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    "config_text",
    ['{"config": []}', "[" * 100_000 + "]" * 100_000, '{"class_name": 1' + "0" * 5000 + "}", "not json",
     '{"class_name": "Sequential", "config": {"layers": "dense"}}', '{"class_name": ["Dense"], "config": {}}', "{}"],
    ids=["config-list", "deep", "huge-int", "not-json", "layers-string", "class-list", "empty"],
)
def test_odd_configs_raise_only_nnsave_errors(genuine, tmp_path, suffix, config_text):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(_with_config(genuine[suffix], suffix, config_text))
    with pytest.raises(NNSaveError, match="model"):
        load_unverified(path)
    _only_nnsave_errors(path)


@_FUZZ
@given(member=st.sampled_from(["model.weights.h5", "metadata.json", "config.json"]),
       positions=st.lists(st.integers(0, 1 << 16), min_size=1, max_size=6))
def test_damaged_keras_members_raise_only_nnsave_errors(genuine, tmp_path_factory, member, positions):
    rewritten = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(genuine[".keras"])) as source, zipfile.ZipFile(rewritten, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, _flipped(data, positions) if name == member else data)
    path = tmp_path_factory.mktemp("member") / "model.keras"
    path.write_bytes(rewritten.getvalue())
    _only_nnsave_errors(path)


def test_a_keras_archive_missing_its_weights_is_an_nnsave_error(genuine, tmp_path):
    rewritten = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(genuine[".keras"])) as source, zipfile.ZipFile(rewritten, "w") as target:
        for name in source.namelist():
            if name != "model.weights.h5":
                target.writestr(name, source.read(name))
    path = tmp_path / "model.keras"
    path.write_bytes(rewritten.getvalue())
    with pytest.raises(FormatError, match=r"model\.keras could not be rebuilt"):
        load_unverified(path)
