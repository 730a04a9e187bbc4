"""Keras models as one .safetensors file: round trips, the standard layout, and every refusal."""

from __future__ import annotations

import contextlib
import json
import struct
import sys

import numpy as np
import pytest
from _keras_models import keras, load_unverified, same_arrays, same_optimizer_state, same_predictions  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnsave
from nnsave import FormatError, IntegrityError, MissingDependencyError, UnsupportedObjectError, UntrustedFileError
from nnsave.formats import SaveOptions, handler_for_path
from nnsave.formats import keras_safetensors as ks
from nnsave.hashing import Digest
from nnsave import Integrity
from nnsave.manifest import manifest_path


def _dense_model(keras, widths=(6, 5, 3), dtype="float32"):
    layers = [keras.Input((widths[0],), name="features")]
    layers += [keras.layers.Dense(w, activation="tanh", dtype=dtype, name=f"dense_{i}") for i, w in enumerate(widths[1:])]
    return keras.Sequential(layers, name="stack")


def _trained(keras, model, epochs=2):
    X = np.random.default_rng(0).normal(size=(64, model.inputs[0].shape[-1])).astype("float32")
    y = np.random.default_rng(1).normal(size=(64, model.outputs[0].shape[-1])).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    model.fit(X, y, epochs=epochs, batch_size=16, verbose=0, shuffle=False)
    return model, X, y


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


def _nothing_written(folder):
    """Only the directory's lock file, which every nnsave writer shares, is left."""
    return [path.name for path in folder.iterdir()] in ([], [".nnsave.lock"])


@pytest.fixture
def saved(tmp_path, keras):
    model = _dense_model(keras)
    return model, nnsave.save(model, tmp_path / "model.safetensors")


# --- round trips ------------------------------------------------------------

def test_the_suffix_picks_the_handler_and_the_manifest_names_the_format(saved):
    model, path = saved
    assert handler_for_path(path).name == "keras-safetensors"
    assert json.loads(manifest_path(path).read_text())["format"] == "keras-safetensors"


def test_round_trip_keeps_weights_bitwise_predictions_and_config(saved):
    model, path = saved
    restored = nnsave.load(path)
    assert same_arrays(model.weights, restored.weights)
    X = np.random.default_rng(0).normal(size=(16, 6)).astype("float32")
    assert same_predictions(model, restored, X)
    # The layers were built with zero initializers; their own are back.
    assert _plain(restored.get_config()) == _plain(model.get_config())


def test_tensors_are_named_by_keras_s_own_walk(saved):
    _, path = saved
    names = [name for name in _header(path)[0] if name != "__metadata__"]
    assert names == ["layers/dense/0", "layers/dense/1", "layers/dense_1/0", "layers/dense_1/1"]


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
    assert same_arrays(model.weights, restored.weights)
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
    assert same_arrays(model.weights, restored.weights)
    assert restored.layers[0].get_config()["scale_initializer"]["class_name"] == "Ones"


def test_state_derived_from_variables_is_rebuilt(tmp_path, keras):
    X = np.random.default_rng(0).normal(3.0, 2.0, size=(64, 4)).astype("float32")
    scale = keras.layers.Normalization(name="scale")
    scale.adapt(X)
    model = keras.Sequential([keras.Input((4,)), scale, keras.layers.Dense(2, name="out")])
    restored = nnsave.load(nnsave.save(model, tmp_path / "normalized.safetensors"))
    assert same_predictions(model, restored, X)


def test_bfloat16_and_float16_variables_round_trip(tmp_path, keras):
    for dtype in ("bfloat16", "float16"):
        model = _dense_model(keras, (4, 3), dtype=dtype)
        restored = nnsave.load(nnsave.save(model, tmp_path / f"{dtype}.safetensors"))
        assert same_arrays(model.weights, restored.weights)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(widths=st.lists(st.integers(1, 9), min_size=2, max_size=4), dtype=st.sampled_from(["float32", "float16"]))
def test_random_dense_stacks_round_trip(tmp_path_factory, keras, widths, dtype):
    model = _dense_model(keras, tuple(widths), dtype=dtype)
    for variable in model.weights:
        variable.assign(np.random.default_rng(len(widths)).normal(size=variable.shape))
    path = nnsave.save(model, tmp_path_factory.mktemp("stack") / "stack.safetensors")
    assert same_arrays(model.weights, nnsave.load(path).weights)


# --- state kept through the layers' own save_own_variables -------------------

def _custom_state_classes(keras):
    """Layers that keep state the way Keras's own saving tests do."""

    @keras.saving.register_keras_serializable(package="nnsave_tests")
    class CountingDense(keras.layers.Dense):
        """Keeps a NumPy array beside its variables, through its own save and load."""

        def build(self, input_shape):
            super().build(input_shape)
            self.seen = np.zeros(3)

        def save_own_variables(self, store):
            super().save_own_variables(store)
            store["seen"] = self.seen

        def load_own_variables(self, store):
            self.seen = np.array(store["seen"])
            super().load_own_variables({key: store[key] for key in store if key != "seen"})

    @keras.saving.register_keras_serializable(package="nnsave_tests")
    class Holder(keras.layers.Layer):
        """Variables in a list and a dict, and a layer nested inside."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = keras.layers.Dense(2, name="inner")

        def build(self, input_shape):
            self.in_list = [self.add_weight(shape=(), initializer="ones", name=f"listed_{i}") for i in range(2)]
            self.in_dict = {"w": self.add_weight(shape=(), initializer="ones", name="in_dict")}
            self.inner.build(input_shape)

        def call(self, x):
            return self.inner(x) * self.in_list[0] * self.in_list[1] * self.in_dict["w"]

    return CountingDense, Holder


def test_custom_state_in_save_own_variables_round_trips(tmp_path, keras):
    CountingDense, Holder = _custom_state_classes(keras)
    model = keras.Sequential([keras.Input((3,)), CountingDense(4, name="counting"), Holder(name="holder")])
    model.layers[0].seen = np.array([1.0, 5.0, 9.0])
    holder = model.layers[1]
    for i, variable in enumerate([*holder.in_list, holder.in_dict["w"], *holder.inner.weights]):
        variable.assign(np.full(variable.shape, i + 2.0))
    restored = nnsave.load(nnsave.save(model, tmp_path / "custom.safetensors"))
    assert np.array_equal(restored.layers[0].seen, [1.0, 5.0, 9.0])
    assert same_arrays(model.weights, restored.weights)
    assert same_predictions(model, restored, np.ones((2, 3), dtype="float32"))


def test_quantized_layers_round_trip(tmp_path, keras):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="a"), keras.layers.Dense(3, name="b")])
    model.quantize("int8")
    restored = nnsave.load(nnsave.save(model, tmp_path / "int8.safetensors"))
    assert same_arrays(model.weights, restored.weights)
    assert same_predictions(model, restored, np.random.default_rng(0).normal(size=(4, 8)).astype("float32"))
    assert {str(v.dtype) for v in restored.weights} >= {"int8"}


def test_compiled_model_continues_training_as_without_the_round_trip(tmp_path, keras):
    model, X, y = _trained(keras, _dense_model(keras))
    path = nnsave.save(model, tmp_path / "trained.safetensors")
    saved_weights = [np.array(w) for w in model.get_weights()]
    assert any(name.startswith(ks.OPTIMIZER_PREFIX) for name in _header(path)[0])

    restored = nnsave.load(path)
    assert same_optimizer_state(model, restored)
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) > 0
    model.fit(X, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    restored.fit(X, y, epochs=2, batch_size=16, verbose=0, shuffle=False)
    assert same_arrays(model.weights, restored.weights)

    bare = nnsave.load(path, compile=False)
    assert not bare.compiled
    assert same_arrays(bare.get_weights(), saved_weights)


def test_a_compiled_but_untrained_model_saves_no_optimizer_state(tmp_path, keras):
    model = _dense_model(keras)
    model.compile(optimizer="sgd", loss="mse")
    path = nnsave.save(model, tmp_path / "untrained.safetensors")
    assert not any(name.startswith(ks.OPTIMIZER_PREFIX) for name in _header(path)[0])
    restored = nnsave.load(path)
    assert restored.compiled and same_arrays(model.weights, restored.weights)


# --- the file is standard safetensors ---------------------------------------

def test_the_safetensors_library_opens_the_file(tmp_path, keras):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    model, _, _ = _trained(keras, _dense_model(keras))
    path = nnsave.save(model, tmp_path / "model.safetensors")
    arrays = load_file(path)
    names = ["layers/dense/0", "layers/dense/1", "layers/dense_1/0", "layers/dense_1/1"]
    assert same_arrays([arrays[name] for name in names], model.weights)
    assert same_arrays([arrays[f"optimizer/{i}"] for i in range(len(model.optimizer.variables))], model.optimizer.variables)
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


def test_inspect_reads_the_header_without_building_the_model(saved, keras):
    model, path = saved
    info = nnsave.inspect(path)
    assert (info.format, info.integrity) == ("keras-safetensors", Integrity.INTACT)
    assert info.parameter_count == model.count_params()
    assert [layer["name"] for layer in info.layers] == ["features", "dense_0", "dense_1"]
    assert info.details == {"model_class": "Sequential", "keras_version": keras.__version__}
    assert "keras-safetensors" in str(info)


# --- memory -----------------------------------------------------------------

class _RecordingTransaction:
    """Stands in for nnsave's transaction and records the size of every write."""

    def __init__(self):
        self.sizes = []

    def stream(self, target):
        recorder = self

        class Stream:
            digest = Digest(0, {"blake3": "0" * 64})

            def write(self, data):
                recorder.sizes.append(memoryview(data).nbytes)
                return recorder.sizes[-1]

        return contextlib.nullcontext(Stream())


def test_saving_writes_one_value_at_a_time(tmp_path, keras):
    model = _dense_model(keras, (2048, 2048, 2048, 512))  # about 40 MB of weights
    transaction = _RecordingTransaction()
    ks.KerasSafetensorsHandler().write(model, transaction, tmp_path / "big.safetensors", SaveOptions())
    header, *tensors = transaction.sizes
    assert tensors == [int(np.asarray(v).nbytes) for v in model.weights]
    assert header < 1 << 16 and max(tensors) == 2048 * 2048 * 4  # never the whole model at once


# --- refusals at save time --------------------------------------------------

def test_a_layer_with_assets_is_refused_at_save_time(tmp_path, keras):
    lookup = keras.layers.StringLookup(name="words")
    lookup.adapt(["a", "b", "b"])
    model = keras.Sequential([keras.Input((1,), dtype="string"), lookup])
    with pytest.raises(UnsupportedObjectError, match=r"'words' \(at layers/string_lookup\).*save_assets.*\.keras"):
        nnsave.save(model, tmp_path / "lookup.safetensors")
    assert _nothing_written(tmp_path)


def test_unsupported_dtype_is_refused_at_save_time(tmp_path, keras):
    class Texts(keras.layers.Layer):
        def save_own_variables(self, store):
            store["words"] = np.array(["a", "b"])

    model = keras.Sequential([keras.Input((2,)), Texts()])
    with pytest.raises(UnsupportedObjectError, match=r"layers/texts/words has dtype.*\.keras"):
        nnsave.save(model, tmp_path / "texts.safetensors")
    assert _nothing_written(tmp_path)


def test_a_key_with_a_slash_is_refused_at_save_time(tmp_path, keras):
    class Slashed(keras.layers.Layer):
        def save_own_variables(self, store):
            store["a/b"] = np.zeros(2)

    with pytest.raises(UnsupportedObjectError, match=r"key 'a/b'.*\.keras"):
        nnsave.save(keras.Sequential([keras.Input((2,)), Slashed()]), tmp_path / "slash.safetensors")


def test_state_that_changes_between_the_two_walks_is_refused(tmp_path, keras):
    class Growing(keras.layers.Layer):
        calls = 0

        def save_own_variables(self, store):
            Growing.calls += 1
            store["history"] = np.zeros(Growing.calls)

    with pytest.raises(UnsupportedObjectError, match=r"state changed while it was saved \(at 'layers/growing/history'\)"):
        nnsave.save(keras.Sequential([keras.Input((2,)), Growing()]), tmp_path / "growing.safetensors")
    assert _nothing_written(tmp_path)


def test_config_that_is_not_json_is_refused_at_save_time(tmp_path, keras):
    class Odd(keras.layers.Layer):
        def get_config(self):
            return {**super().get_config(), "thing": object()}

    model = keras.Sequential([keras.Input((2,)), Odd()])
    with pytest.raises(UnsupportedObjectError, match=r"(?s)odd\.safetensors.*\.keras"):
        nnsave.save(model, tmp_path / "odd.safetensors")


def test_optimizer_state_without_a_compile_config_is_refused(tmp_path, keras):
    class Plain(keras.Sequential):
        def get_compile_config(self):
            return None

    model, _, _ = _trained(keras, Plain([keras.Input((4,)), keras.layers.Dense(2)]), epochs=1)
    with pytest.raises(UnsupportedObjectError, match=r"no compile config.*\.keras"):
        nnsave.save(model, tmp_path / "plain.safetensors")


def test_compress_is_refused(tmp_path, keras):
    with pytest.raises(ValueError, match="compress"):
        nnsave.save(_dense_model(keras), tmp_path / "m.safetensors", compress=3)


@pytest.fixture
def without_keras_state_walk(monkeypatch):
    """Keras as a release that moved its private saving functions would be."""
    monkeypatch.setitem(sys.modules, "keras.src.saving.saving_lib", None)


def test_a_keras_without_its_state_walk_gives_a_clear_error(saved, tmp_path, keras, request):
    model, path = saved
    request.getfixturevalue("without_keras_state_walk")
    with pytest.raises(MissingDependencyError, match=r"Saving .*other\.safetensors needs Keras's state walk.*\.keras"):
        nnsave.save(model, tmp_path / "other.safetensors")
    with pytest.raises(MissingDependencyError, match=r"Loading .*model\.safetensors needs Keras's state walk"):
        nnsave.load(path)


# --- refusals at load time --------------------------------------------------

def test_a_plain_safetensors_file_says_how_to_open_it(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros(3, dtype=np.float32)}, path)
    for attempt in (lambda: load_unverified(path), lambda: nnsave.inspect(path)):
        with pytest.raises(FormatError, match=r"plain\.safetensors.*safetensors\.numpy\.load_file"):
            attempt()


def test_lambda_is_refused_in_safe_mode(tmp_path, keras):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2)])
    path = nnsave.save(model, tmp_path / "lambda.safetensors")
    with pytest.raises(UntrustedFileError, match="safe mode"):
        nnsave.load(path)
    restored = nnsave.load(path, safe_mode=False)  # signed with this user's key
    assert np.array_equal(restored.predict(np.ones((1, 2)), verbose=0), [[2.0, 2.0]])


def test_an_unregistered_custom_layer_says_how_to_register_it(tmp_path, keras):
    class Unregistered(keras.layers.Layer):
        def call(self, x):
            return x

    path = nnsave.save(keras.Sequential([keras.Input((2,)), Unregistered()]), tmp_path / "custom.safetensors")
    with pytest.raises(FormatError, match="register_keras_serializable"):
        nnsave.load(path)


def test_safe_mode_off_needs_a_vouch(saved):
    _, path = saved
    manifest_path(path).unlink()
    with pytest.raises(UntrustedFileError, match="trusted=True"):
        load_unverified(path, safe_mode=False)


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
        load_unverified(path)


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
        load_unverified(path)
    with pytest.raises(FormatError, match=message):
        nnsave.inspect(path)


def test_header_length_beyond_the_file(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 64) + b"{}      ")
    with pytest.raises(FormatError, match="header length"):
        load_unverified(path)


def _edited(path, edit):
    header, body = _header(path)
    body = edit(header, body) or body
    return _rewrite(path, header, body)


def _first(header):
    return "layers/dense/0"


def _bump_version(header, body):
    header["__metadata__"][ks.FORMAT_VERSION_KEY] = "1"


def _bad_config(header, body):
    header["__metadata__"][ks.CONFIG_KEY] = "{not json"


def _config_not_object(header, body):
    header["__metadata__"][ks.CONFIG_KEY] = "[]"


def _no_config(header, body):
    del header["__metadata__"][ks.CONFIG_KEY]


def _overlap(header, body):
    header["layers/dense/1"]["data_offsets"] = [o - 4 for o in header["layers/dense/1"]["data_offsets"]]


def _gap(header, body):
    last = max((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"][0])
    header[last]["data_offsets"] = [o + 4 for o in header[last]["data_offsets"]]
    return body + b"\0" * 4


def _extra_bytes(header, body):
    return body + b"\0" * 8


def _wrong_shape(header, body):
    rows, cols = header[_first(header)]["shape"]
    header[_first(header)]["shape"] = [cols, rows]


def _unknown_dtype(header, body):
    header[_first(header)]["dtype"] = "C64"


def _size_mismatch(header, body):
    header[_first(header)]["shape"] = [1]


def _negative_offsets(header, body):
    header[_first(header)]["data_offsets"] = [8, 0]


def _entry_not_object(header, body):
    header["junk"] = 3


def _no_key(header, body):
    header["layers/dense/"] = header.pop(_first(header))


def _renamed(header, body):
    header["layers/elsewhere/0"] = header.pop(_first(header))


def _one_tensor_fewer(header, body):
    last = max((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"][0])
    return body[: header.pop(last)["data_offsets"][0]]


def _extra_tensor(header, body):
    header["layers/elsewhere/0"] = {"dtype": "F32", "shape": [2], "data_offsets": [len(body), len(body) + 8]}
    return body + b"\0" * 8


def _orphan_optimizer_state(header, body):
    header["optimizer/0"] = {"dtype": "I64", "shape": [], "data_offsets": [len(body), len(body) + 8]}
    return body + b"\0" * 8


@pytest.mark.parametrize(
    "edit, message",
    [
        (_bump_version, "version '1' of nnsave's Keras safetensors layout; this nnsave reads version 2 only"),
        (_bad_config, "model config is damaged \\(not valid JSON"),
        (_config_not_object, "model config is damaged \\(not a JSON object\\)"),
        (_no_config, "missing or implausibly large"),
        (_overlap, "overlaps"),
        (_gap, "gap"),
        (_extra_bytes, "bytes after its last tensor"),
        (_wrong_shape, r"state of 'dense_0' \(Dense\) does not fit"),
        (_unknown_dtype, "unknown dtype 'C64'"),
        (_size_mismatch, "spans 120 bytes"),
        (_negative_offsets, "invalid shape or data_offsets"),
        (_entry_not_object, "'junk' is not a JSON object"),
        (_no_key, "has no key after its owner's path"),
        (_renamed, r"state of 'dense_0' \(Dense\) does not fit"),
        (_one_tensor_fewer, r"state of 'dense_1' \(Dense\) does not fit"),
        (_extra_tensor, r"holds 1 tensor\(s\) that the model built from its config did not take \(layers/elsewhere/0\)"),
        (_orphan_optimizer_state, "optimizer state but its config has no compile config"),
    ],
    ids=lambda value: value.__name__.strip("_") if callable(value) else None,
)
def test_damaged_headers_are_format_errors(saved, edit, message):
    _, path = saved
    path = _edited(path, edit)
    with pytest.raises(FormatError, match=message):
        load_unverified(path)


def test_optimizer_tensors_the_rebuilt_optimizer_does_not_take_are_an_error(tmp_path, keras):
    model, _, _ = _trained(keras, _dense_model(keras))
    path = nnsave.save(model, tmp_path / "trained.safetensors")

    def one_fewer(header, body):
        last = max((n for n in header if n.startswith(ks.OPTIMIZER_PREFIX)), key=lambda n: header[n]["data_offsets"][0])
        return body[: header.pop(last)["data_offsets"][0]]

    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):  # Keras only warns
        with pytest.raises(FormatError, match=r"holds \d+ tensor\(s\) that the model .* did not take \(optimizer/0"):
            load_unverified(_edited(path, one_fewer))
    load_unverified(path, compile=False)  # without compiling, optimizer tensors are left alone


def test_header_that_is_not_json_or_not_an_object(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", 8) + b"{oops   ")
    with pytest.raises(FormatError, match=r"header is damaged \(not valid JSON"):
        load_unverified(path)
    path.write_bytes(struct.pack("<Q", 8) + b"{}      ")
    with pytest.raises(FormatError, match="without nnsave's Keras model metadata"):
        load_unverified(path)
