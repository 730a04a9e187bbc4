"""Keras models as one .safetensors file: round trips, the standard layout, and every refusal."""

from __future__ import annotations

import json
import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnsave
from nnsave import FormatError, IntegrityError, UnsupportedObjectError, UntrustedFileError, UnverifiedFileWarning
from nnsave.formats import handler_for_path
from nnsave.formats import keras_safetensors as ks
from nnsave.manifest import manifest_path


def _dense_model(keras, widths=(6, 5, 3), dtype="float32"):
    layers = [keras.Input((widths[0],), name="features")]
    layers += [keras.layers.Dense(w, activation="tanh", dtype=dtype, name=f"dense_{i}") for i, w in enumerate(widths[1:])]
    return keras.Sequential(layers, name="stack")


def _same_weights(a, b):
    return len(a.weights) == len(b.weights) and all(
        np.array_equal(x, y) and x.dtype == y.dtype for x, y in zip(a.get_weights(), b.get_weights())
    )


def _plain(config):
    """A config with tuples as lists, as it reads after a trip through JSON."""
    return json.loads(json.dumps(config))


def _header(path):
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _rewrite(path, header, body):
    """Write a file with this header and these tensor bytes; drop its manifest."""
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + body)
    manifest_path(path).unlink(missing_ok=True)
    return path


def _load_unverified(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        return nnsave.load(path, **kwargs)


@pytest.fixture
def saved(tmp_path, keras):
    model = _dense_model(keras)
    return model, nnsave.save(model, tmp_path / "model.safetensors")


# --- round trips ------------------------------------------------------------

def test_the_suffix_picks_the_handler_and_the_manifest_names_the_format(saved):
    model, path = saved
    assert handler_for_path(path).name == "keras-safetensors"
    assert json.loads(manifest_path(path).read_text())["format"] == "keras-safetensors"


def test_round_trip_keeps_weights_bitwise_predictions_and_config(saved, digits):
    model, path = saved
    restored = nnsave.load(path)
    assert _same_weights(model, restored)
    X = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    assert np.array_equal(model.predict(X, verbose=0), restored.predict(X, verbose=0))
    # The layers were built with zero initializers; their own are back.
    assert _plain(restored.get_config()) == _plain(model.get_config())


def _counting_builds(monkeypatch, keras):
    """Count how often the model is built from its config while loading."""
    calls = []
    real = keras.saving.deserialize_keras_object
    monkeypatch.setattr(keras.saving, "deserialize_keras_object", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    return calls


def test_initializers_come_back_on_recurrent_cells_and_nested_models(tmp_path, keras, monkeypatch):
    inner = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(5, name="lstm")], name="inner")
    inputs = keras.Input((4, 3))
    outputs = keras.layers.Dense(2, kernel_initializer=keras.initializers.HeNormal(seed=3), name="head")(inner(inputs))
    model = keras.Model(inputs, outputs, name="outer")
    path = nnsave.save(model, tmp_path / "nested.safetensors")
    builds = _counting_builds(monkeypatch, keras)
    restored = nnsave.load(path)
    assert len(builds) == 1  # the cheap build sufficed
    assert _same_weights(model, restored)
    assert _plain(restored.get_config()) == _plain(model.get_config())


def test_an_initializer_out_of_reach_makes_loading_build_the_ordinary_way(tmp_path, keras, monkeypatch):
    @keras.saving.register_keras_serializable(package="nnsave_tests")
    class Scaled(keras.layers.Layer):
        """Keeps its initializer under another attribute name than its config key."""

        def __init__(self, scale_initializer="ones", **kwargs):
            super().__init__(**kwargs)
            self._init = keras.initializers.get(scale_initializer)

        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), initializer=self._init)

        def call(self, x):
            return x * self.scale

        def get_config(self):
            return {**super().get_config(), "scale_initializer": keras.initializers.serialize(self._init)}

    model = keras.Sequential([keras.Input((3,)), Scaled(name="scaled")])
    model.layers[0].scale.assign([1.0, 2.0, 3.0])
    path = nnsave.save(model, tmp_path / "custom.safetensors")
    builds = _counting_builds(monkeypatch, keras)
    restored = nnsave.load(path)
    assert len(builds) == 2
    assert _same_weights(model, restored)
    assert restored.layers[0].get_config()["scale_initializer"]["class_name"] == "Ones"


def test_state_derived_from_variables_is_rebuilt(tmp_path, keras):
    X = np.random.default_rng(0).normal(3.0, 2.0, size=(64, 4)).astype("float32")
    scale = keras.layers.Normalization(name="scale")
    scale.adapt(X)
    model = keras.Sequential([keras.Input((4,)), scale, keras.layers.Dense(2, name="out")])
    restored = nnsave.load(nnsave.save(model, tmp_path / "normalized.safetensors"))
    assert np.array_equal(model.predict(X, verbose=0), restored.predict(X, verbose=0))


def test_a_layer_with_assets_is_refused_at_save_time(tmp_path, keras):
    lookup = keras.layers.StringLookup(name="words")
    lookup.adapt(["a", "b", "b"])
    model = keras.Sequential([keras.Input((1,), dtype="string"), lookup])
    with pytest.raises(UnsupportedObjectError, match=r"'words' \(StringLookup\).*\.keras"):
        nnsave.save(model, tmp_path / "lookup.safetensors")


def test_bfloat16_and_float16_variables_round_trip(tmp_path, keras):
    for dtype in ("bfloat16", "float16"):
        model = _dense_model(keras, (4, 3), dtype=dtype)
        restored = nnsave.load(nnsave.save(model, tmp_path / f"{dtype}.safetensors"))
        assert _same_weights(model, restored)


def test_compiled_model_continues_training_as_without_the_round_trip(tmp_path, keras, digits):
    X, y = digits
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
    path = nnsave.save(model, tmp_path / "trained.safetensors")
    saved_weights = model.get_weights()
    assert any(name.startswith(ks.OPTIMIZER_PREFIX) for name in _header(path)[0])

    restored = nnsave.load(path)
    assert int(restored.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) > 0
    model.fit(X, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
    restored.fit(X, y, epochs=2, batch_size=64, verbose=0, shuffle=False)
    assert _same_weights(model, restored)

    bare = nnsave.load(path, compile=False)
    assert not bare.compiled
    assert all(np.array_equal(a, b) for a, b in zip(bare.get_weights(), saved_weights))


def test_a_compiled_but_untrained_model_saves_no_optimizer_state(tmp_path, keras):
    model = _dense_model(keras)
    model.compile(optimizer="sgd", loss="mse")
    path = nnsave.save(model, tmp_path / "untrained.safetensors")
    assert not any(name.startswith(ks.OPTIMIZER_PREFIX) for name in _header(path)[0])
    restored = nnsave.load(path)
    assert restored.compiled and _same_weights(model, restored)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widths=st.lists(st.integers(1, 9), min_size=2, max_size=4), dtype=st.sampled_from(["float32", "float16"]))
def test_random_dense_stacks_round_trip(tmp_path_factory, keras, widths, dtype):
    model = _dense_model(keras, tuple(widths), dtype=dtype)
    for variable in model.weights:
        variable.assign(np.random.default_rng(len(widths)).normal(size=variable.shape))
    path = nnsave.save(model, tmp_path_factory.mktemp("stack") / "stack.safetensors")
    assert _same_weights(model, nnsave.load(path))


# --- the file is standard safetensors ---------------------------------------

def test_the_safetensors_library_opens_the_file(tmp_path, keras, trained_sequential):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = nnsave.save(trained_sequential, tmp_path / "model.safetensors")
    arrays = load_file(path)
    model_arrays = [arrays[name] for name in sorted(arrays) if not name.startswith(ks.OPTIMIZER_PREFIX)]
    assert all(np.array_equal(a, b) for a, b in zip(model_arrays, trained_sequential.get_weights()))
    assert len(arrays) == len(trained_sequential.weights) + len(trained_sequential.optimizer.variables)
    with safe_open(path, "np") as handle:
        metadata = handle.metadata()
    assert metadata[ks.FORMAT_KEY] == ks.FORMAT_VALUE and metadata[ks.KERAS_VERSION_KEY] == keras.__version__
    config = json.loads(metadata[ks.CONFIG_KEY])
    assert config["class_name"] == "Sequential" and config["compile_config"]["optimizer"]["class_name"] == "Adam"


def test_header_matches_the_reference_writer(tmp_path):
    from safetensors.numpy import load_file, save_file

    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(5, dtype=np.int64)}
    path = tmp_path / "ours.safetensors"
    header = ks.safetensors_header([(name, a.dtype.name, a.shape) for name, a in tensors.items()], {"k": "v"})
    path.write_bytes(header + b"".join(a.tobytes() for a in tensors.values()))
    loaded = load_file(path)
    assert all(np.array_equal(loaded[name], tensors[name]) for name in tensors)
    save_file(tensors, tmp_path / "theirs.safetensors")  # the reference writer pads the same way
    theirs = (tmp_path / "theirs.safetensors").read_bytes()
    assert struct.unpack("<Q", theirs[:8])[0] % 8 == 0 and len(header) % 8 == 0
    with pytest.raises(ValueError, match="two tensors"):
        ks.safetensors_header([("a", "float32", (1,)), ("a", "float32", (1,))])


def test_inspect_reads_the_header_without_building_the_model(saved):
    model, path = saved
    info = nnsave.inspect(path)
    assert (info.format, info.hash_status) == ("keras-safetensors", "verified")
    assert info.parameter_count == model.count_params()
    assert [layer["name"] for layer in info.layers] == ["features", "dense_0", "dense_1"]
    assert info.details == {"model_class": "Sequential", "keras_version": __import__("keras").__version__}
    assert "keras-safetensors" in str(info)


# --- memory -----------------------------------------------------------------

class _RecordingTransaction:
    """Stands in for nnsave's transaction and records the size of every write."""

    def __init__(self):
        self.sizes = []

    def stream(self, target):
        import contextlib

        from nnsave.storage import Digest

        recorder = self

        class Stream:
            digest = Digest("0" * 64, 0)

            def write(self, data):
                recorder.sizes.append(memoryview(data).nbytes)
                return recorder.sizes[-1]

        return contextlib.nullcontext(Stream())


def test_saving_writes_one_variable_at_a_time(tmp_path, keras):
    model = _dense_model(keras, (2048, 2048, 2048, 512))  # about 40 MB of weights
    transaction = _RecordingTransaction()
    ks.KerasSafetensorsHandler().write(model, transaction, tmp_path / "big.safetensors", compress=None)
    header, *tensors = transaction.sizes
    assert tensors == [int(v.numpy().nbytes) for v in model.weights]
    assert header < 1 << 16 and max(tensors) == 2048 * 2048 * 4  # never the whole model at once


# --- refusals at save time --------------------------------------------------

def test_unsupported_dtype_is_refused_at_save_time(tmp_path, keras):
    class Complex(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(2,), dtype="complex64", trainable=False, initializer="zeros")

    model = keras.Sequential([keras.Input((2,)), Complex()])
    with pytest.raises(UnsupportedObjectError, match=r"complex64.*\.keras"):
        nnsave.save(model, tmp_path / "complex.safetensors")
    assert not list(tmp_path.iterdir())


def test_config_that_is_not_json_is_refused_at_save_time(tmp_path, keras):
    class Odd(keras.layers.Layer):
        def get_config(self):
            return {**super().get_config(), "thing": object()}

    model = keras.Sequential([keras.Input((2,)), Odd()])
    with pytest.raises(UnsupportedObjectError, match=r"(?s)odd\.safetensors.*\.keras"):
        nnsave.save(model, tmp_path / "odd.safetensors")


def test_optimizer_state_without_a_compile_config_is_refused(tmp_path, keras, digits):
    class Plain(keras.Sequential):
        def get_compile_config(self):
            return None

    X, y = digits
    model = Plain([keras.Input((64,)), keras.layers.Dense(10)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(X, np.eye(10)[y], epochs=1, verbose=0)
    with pytest.raises(UnsupportedObjectError, match=r"no compile config.*\.keras"):
        nnsave.save(model, tmp_path / "plain.safetensors")


def test_compress_is_refused(tmp_path, keras):
    with pytest.raises(ValueError, match="compress"):
        nnsave.save(_dense_model(keras), tmp_path / "m.safetensors", compress=3)


# --- refusals at load time --------------------------------------------------

def test_a_plain_safetensors_file_says_how_to_open_it(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, path)
    for attempt in (lambda: _load_unverified(path), lambda: nnsave.inspect(path)):
        with pytest.raises(FormatError, match=r"plain\.safetensors.*safetensors\.numpy\.load_file"):
            attempt()


def test_lambda_is_refused_in_safe_mode(tmp_path, keras):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    path = nnsave.save(model, tmp_path / "lambda.safetensors")
    with pytest.raises(UntrustedFileError, match="safe mode"):
        nnsave.load(path)
    restored = nnsave.load(path, safe_mode=False, trusted=True)
    assert np.array_equal(restored.predict(np.ones((1, 2)), verbose=0), [[2.0, 2.0]])


def test_an_unregistered_custom_layer_says_how_to_register_it(tmp_path, keras):
    class Unregistered(keras.layers.Layer):
        def call(self, x):
            return x

    path = nnsave.save(keras.Sequential([keras.Input((2,)), Unregistered()]), tmp_path / "custom.safetensors")
    with pytest.raises(FormatError, match="register_keras_serializable"):
        nnsave.load(path)


def test_safe_mode_off_needs_a_manifest_or_trust(saved):
    _, path = saved
    manifest_path(path).unlink()
    with pytest.raises(UntrustedFileError, match="trusted=True"):
        _load_unverified(path, safe_mode=False)


def test_tampering_is_an_integrity_error_with_a_manifest(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        nnsave.load(path)


def test_truncated_file(saved):
    _, path = saved
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(IntegrityError, match="truncated"):
        nnsave.load(path)
    manifest_path(path).unlink()
    with pytest.raises(FormatError, match="is truncated"):
        _load_unverified(path)


@pytest.mark.parametrize(
    "prefix, message",
    [(b"", "not a safetensors file"), (struct.pack("<Q", 1 << 40) + b"{}", "not a safetensors file"),
     (struct.pack("<Q", 2) + b"[]", "not a safetensors file")],
    ids=["empty", "huge-header-length", "no-brace"],
)
def test_wrong_header_length_or_start(tmp_path, prefix, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(prefix)
    with pytest.raises(FormatError, match=message):
        _load_unverified(path)
    with pytest.raises(FormatError, match=message):
        nnsave.inspect(path)


def test_header_length_beyond_the_file_is_caught_by_the_reader_too(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 64) + b"{}")
    with pytest.raises(FormatError, match="header length"):
        ks.KerasSafetensorsHandler().describe(path)


def _edited(path, edit):
    header, body = _header(path)
    body = edit(header, body) or body
    return _rewrite(path, header, body)


def _first(header):
    return next(name for name in header if name.startswith("00000/"))


def _bump_version(header, body):
    header["__metadata__"][ks.FORMAT_VERSION_KEY] = "99"


def _bad_config(header, body):
    header["__metadata__"][ks.CONFIG_KEY] = "{not json"


def _config_not_object(header, body):
    header["__metadata__"][ks.CONFIG_KEY] = "[]"


def _no_config(header, body):
    del header["__metadata__"][ks.CONFIG_KEY]


def _overlap(header, body):
    second = next(name for name in header if name.startswith("00001/"))
    header[second]["data_offsets"] = [o - 4 for o in header[second]["data_offsets"]]


def _gap(header, body):
    last = max((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"][0])
    header[last]["data_offsets"] = [o + 4 for o in header[last]["data_offsets"]]
    return body + b"\0" * 4


def _extra_bytes(header, body):
    return body + b"\0" * 8


def _wrong_shape(header, body):
    name = _first(header)
    rows, cols = header[name]["shape"]
    header[name]["shape"] = [cols, rows]


def _wrong_dtype(header, body):
    name = _first(header)
    header[name]["dtype"] = "I32"


def _unknown_dtype(header, body):
    header[_first(header)]["dtype"] = "C64"


def _size_mismatch(header, body):
    header[_first(header)]["shape"] = [1]


def _negative_offsets(header, body):
    header[_first(header)]["data_offsets"] = [8, 0]


def _entry_not_object(header, body):
    header["junk"] = 3


def _renamed(header, body):
    header["00007/moved"] = header.pop(_first(header))


def _one_tensor_fewer(header, body):
    names = sorted(n for n in header if n != "__metadata__")
    last = header.pop(names[-1])
    return body[: last["data_offsets"][0]]


def _orphan_optimizer_state(header, body):
    header["optimizer/00000/adam/iteration"] = {"dtype": "I64", "shape": [], "data_offsets": [len(body), len(body) + 8]}
    return body + b"\0" * 8


@pytest.mark.parametrize(
    "edit, message",
    [
        (_bump_version, "version '99'"),
        (_bad_config, "model config is not valid JSON"),
        (_config_not_object, "model config is not a JSON object"),
        (_no_config, "missing or implausibly large"),
        (_overlap, "overlaps"),
        (_gap, "gap"),
        (_extra_bytes, "bytes after its last tensor"),
        (_wrong_shape, r"is float32 \(5, 6\), but the model variable"),
        (_wrong_dtype, "is int32"),
        (_unknown_dtype, "unknown dtype 'C64'"),
        (_size_mismatch, "spans 120 bytes"),
        (_negative_offsets, "invalid shape or data_offsets"),
        (_entry_not_object, "'junk' is not a JSON object"),
        (_renamed, "'00007/moved' is stored where tensor 00000 belongs"),
        (_one_tensor_fewer, "holds 3 model tensors"),
        (_orphan_optimizer_state, "optimizer state but its config has no compile config"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_damaged_headers_are_format_errors(saved, edit, message):
    _, path = saved
    path = _edited(path, edit)
    with pytest.raises(FormatError, match=message):
        _load_unverified(path)


def test_optimizer_tensors_are_checked_against_the_rebuilt_optimizer(tmp_path, trained_sequential):
    path = nnsave.save(trained_sequential, tmp_path / "trained.safetensors")

    def one_fewer(header, body):
        last = max((n for n in header if n.startswith(ks.OPTIMIZER_PREFIX)), key=lambda n: header[n]["data_offsets"][0])
        return body[: header.pop(last)["data_offsets"][0]]

    with pytest.raises(FormatError, match="optimizer tensors"):
        _load_unverified(_edited(path, one_fewer))
    _load_unverified(path, compile=False)  # without compiling, optimizer tensors are skipped


def test_header_that_is_not_json_or_not_an_object(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 8) + b"{oops   ")
    with pytest.raises(FormatError, match="header is not valid JSON"):
        _load_unverified(path)
    path.write_bytes(struct.pack("<Q", 8) + b"{}      ")
    with pytest.raises(FormatError, match="without nnsave's Keras model metadata"):
        _load_unverified(path)


def test_a_file_cut_short_while_it_is_read(saved, keras):
    model, path = saved
    layout = ks._read_layout(path)
    plan = list(zip(layout.model_tensors, model.weights))
    with pytest.raises(FormatError, match="cut short while loading"):
        ks._assign_from_file(path, path.stat().st_size, plan)
