"""Safe mode holds for .keras and .safetensors files, whatever Keras's global switch says.

After ``keras.config.enable_unsafe_deserialization()`` plain Keras loads a
``TFSMLayer`` that runs another SavedModel, a lookup layer that reads its
vocabulary from any path, and a Lambda. ``nnsave.load`` in safe mode refuses
all of them, for both Keras formats, before Keras sees the config; and should
its audit miss something, Keras's own safe mode (held on for the load) refuses
it, as an nnsave error that is still the ``ValueError`` Keras raised.
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from _keras_models import backend, keras, load_unverified  # noqa: F401

import nnsave
from nnsave import FormatError, UnknownClassError, UntrustedFileError
from nnsave.formats import _keras
from nnsave.formats import keras_safetensors as ks
from nnsave.manifest import manifest_path

SUFFIXES = (".keras", ".safetensors")
needs_tensorflow = pytest.mark.skipif("backend() != 'tensorflow'", reason="TFSMLayer runs on TensorFlow only")


def _plain_config(keras):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, name="dense")], name="plain")
    return json.loads(json.dumps(keras.saving.serialize_keras_object(model)))


def _with_layer(keras, layer_config):
    config = _plain_config(keras)
    config["config"]["layers"].append(layer_config)
    return config


def _written(path, config):
    """A file as anyone could write it: the config by hand, no weights, no manifest."""
    import keras

    if path.suffix == ".keras":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", json.dumps(config))
            archive.writestr("metadata.json", json.dumps({"keras_version": keras.__version__}))
    else:
        metadata = {
            ks.FORMAT_KEY: ks.FORMAT_VALUE, ks.FORMAT_VERSION_KEY: ks.FORMAT_VERSION,
            ks.KERAS_VERSION_KEY: keras.__version__, ks.CONFIG_KEY: json.dumps(config),
        }
        path.write_bytes(ks.safetensors_header([], metadata))
    return path


def _refused(path, *, match):
    with pytest.raises(UntrustedFileError, match=match) as caught:
        load_unverified(path)
    assert isinstance(caught.value, ValueError) and "safe mode" in str(caught.value)
    assert str(path) in str(caught.value)


# --- TFSMLayer --------------------------------------------------------------

@pytest.fixture
def saved_model_dir(tmp_path, keras):
    """A SavedModel outside any model file, as ``model.export`` writes it."""
    exported = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    folder = tmp_path / "outside"
    exported.export(folder, verbose=False)
    return folder


@needs_tensorflow
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_tfsm_layer_is_refused_after_the_global_switch(tmp_path, keras, saved_model_dir, unsafe_switch_on, suffix):
    outside = keras.layers.TFSMLayer(str(saved_model_dir), call_endpoint="serve")
    model = keras.Sequential([keras.Input((2,)), outside])
    path = nnsave.save(model, tmp_path / f"tfsm{suffix}")
    # Even signed with this user's own key, safe mode refuses it.
    with pytest.raises(UntrustedFileError, match=r"TFSMLayer, which runs another SavedModel") as caught:
        nnsave.load(path)
    assert isinstance(caught.value, ValueError) and str(path) in str(caught.value)
    # Plain Keras, with the switch on, would build it and run the outside graph.
    if suffix == ".keras":
        assert keras.saving.load_model(path).predict(np.ones((1, 2)), verbose=0).shape == (1, 2)
    restored = nnsave.load(path, safe_mode=False)  # the owner vouches with their key
    assert np.array_equal(restored.predict(np.ones((1, 2)), verbose=0), model.predict(np.ones((1, 2)), verbose=0))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_tfsm_layer_written_by_hand_is_refused_on_any_backend(tmp_path, keras, unsafe_switch_on, suffix):
    layer = {"module": "keras.layers", "class_name": "TFSMLayer", "registered_name": None,
             "config": {"name": "outside", "filepath": "/tmp/elsewhere", "call_endpoint": "serve"}}
    path = _written(tmp_path / f"tfsm{suffix}", _with_layer(keras, layer))
    _refused(path, match=r"TFSMLayer.*\(outside\)")


# --- vocabularies read from paths ---------------------------------------------

_LOOKUPS = {
    "StringLookup": {"max_tokens": None, "num_oov_indices": 1, "oov_token": "[UNK]", "mask_token": None},
    "IntegerLookup": {"max_tokens": None, "num_oov_indices": 1, "oov_token": -1, "mask_token": None},
    "TextVectorization": {"max_tokens": None, "output_mode": "int"},
}


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("class_name", sorted(_LOOKUPS))
def test_a_vocabulary_read_from_a_path_is_refused_after_the_global_switch(tmp_path, keras, unsafe_switch_on, suffix, class_name):
    layer = {"module": "keras.layers", "class_name": class_name, "registered_name": None,
             "config": {"name": "words", "vocabulary": "/etc/passwd", **_LOOKUPS[class_name]}}
    path = _written(tmp_path / f"lookup{suffix}", _with_layer(keras, layer))
    _refused(path, match=r"a vocabulary read from the file '/etc/passwd' \(words\)")


def test_an_in_memory_vocabulary_loads_in_safe_mode(tmp_path, keras, unsafe_switch_on):
    lookup = keras.layers.StringLookup(vocabulary=["cat", "dog"], name="words")
    model = keras.Sequential([keras.Input((1,), dtype="string"), lookup])
    restored = nnsave.load(nnsave.save(model, tmp_path / "lookup.keras"))
    assert restored.layers[-1].get_vocabulary() == ["[UNK]", "cat", "dog"]


# --- code -------------------------------------------------------------------

@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_lambda_is_refused_after_the_global_switch(tmp_path, keras, unsafe_switch_on, suffix):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2, name="double")])
    path = nnsave.save(model, tmp_path / f"lambda{suffix}")
    manifest_path(path).unlink()  # as it would arrive from someone else
    _refused(path, match=r"a Lambda layer \(Python code\) \(double\)")
    with pytest.raises(UntrustedFileError, match="nobody vouched"):
        load_unverified(path, safe_mode=False)


def test_a_pickled_torch_module_is_refused(tmp_path, keras, unsafe_switch_on):
    layer = {"module": "keras.layers", "class_name": "TorchModuleWrapper", "registered_name": None,
             "config": {"name": "torch", "module": "gASV..."}}
    _refused(_written(tmp_path / "torch.keras", _with_layer(keras, layer)), match=r"pickled torch module\) \(torch\)")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_keras_s_own_refusal_is_an_nnsave_value_error_if_the_audit_missed_it(tmp_path, keras, monkeypatch, unsafe_switch_on, suffix):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Lambda(lambda x: x * 2, name="double")])
    path = nnsave.save(model, tmp_path / f"lambda{suffix}")
    monkeypatch.setattr(_keras, "audit_config", lambda config: ())  # an audit that misses the Lambda
    with pytest.raises(FormatError, match=r"(?s)lambda.*could not be rebuilt.*safe_mode=False only if you trust") as caught:
        nnsave.load(path)
    assert isinstance(caught.value, ValueError) and not isinstance(caught.value, UntrustedFileError)


# --- the allow-list of modules and classes ------------------------------------

def _activation(keras, function):
    config = _plain_config(keras)
    config["config"]["layers"][-1]["config"]["activation"] = function
    return config


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_function_outside_the_modeling_namespaces_is_refused(tmp_path, keras, unsafe_switch_on, suffix):
    download = {"module": "keras.datasets.mnist", "class_name": "function", "config": "load_data", "registered_name": None}
    path = _written(tmp_path / f"download{suffix}", _activation(keras, download))
    _refused(path, match=r"the function keras\.datasets\.mnist\.load_data, which is not part of a model")


def test_a_class_outside_the_modeling_namespaces_is_refused(tmp_path, keras, unsafe_switch_on):
    layer = {"module": "keras.callbacks", "class_name": "BackupAndRestore", "registered_name": None,
             "config": {"name": "backup", "backup_dir": "/tmp/x"}}
    _refused(_written(tmp_path / "callback.keras", _with_layer(keras, layer)),
             match=r"the class keras\.callbacks\.BackupAndRestore, which is not part of a model")


def test_a_keras_family_class_is_refused(tmp_path, keras, unsafe_switch_on):
    layer = {"module": "keras_hub.src.models.bert.bert_tokenizer", "class_name": "BertTokenizer",
             "registered_name": "keras_hub>BertTokenizer", "config": {"name": "tokens"}}
    _refused(_written(tmp_path / "hub.keras", _with_layer(keras, layer)), match=r"BertTokenizer from keras_hub.*fetch files")


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_an_unknown_module_is_refused_before_keras_sees_it(tmp_path, keras, monkeypatch, suffix):
    layer = {"module": "os", "class_name": "system", "registered_name": "system", "config": {"name": "shell"}}
    path = _written(tmp_path / f"unknown{suffix}", _with_layer(keras, layer))
    built = []
    monkeypatch.setattr(keras.saving, "deserialize_keras_object", lambda *a, **k: built.append(a))
    with pytest.raises(UnknownClassError, match=r"uses os\.system, which this process does not know.*custom_objects"):
        load_unverified(path)
    assert built == []


def test_modeling_functions_and_registered_ones_load(tmp_path, keras, unsafe_switch_on):
    @keras.saving.register_keras_serializable(package="nnsave_tests")
    def halve(x):
        return x / 2

    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, activation=keras.activations.gelu)(inputs)
    outputs = keras.layers.Dense(2, activation=halve)(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss=keras.losses.mean_squared_error, metrics=[keras.metrics.mean_absolute_error])
    for suffix in SUFFIXES:
        restored = nnsave.load(nnsave.save(model, tmp_path / f"functions{suffix}"))
        assert np.array_equal(restored.predict(np.ones((1, 3)), verbose=0), model.predict(np.ones((1, 3)), verbose=0))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_the_audit_runs_in_inspect_free_facts_only(tmp_path, keras, suffix):
    """inspect describes a hostile file without refusing or building it."""
    layer = {"module": "keras.layers", "class_name": "TFSMLayer", "registered_name": None,
             "config": {"name": "outside", "filepath": "/tmp/elsewhere"}}
    info = nnsave.inspect(_written(tmp_path / f"tfsm{suffix}", _with_layer(keras, layer)))
    assert [entry["type"] for entry in info.layers][-1] == "TFSMLayer"
