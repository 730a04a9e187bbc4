"""The model zoo: every kind of Keras model round-trips through .keras and .safetensors.

Each kind is built once (a module-wide cache) and then saved to and loaded
from each format. A round trip passes when the predictions, the weights and
the optimizer state are all bit for bit the same; a format that cannot hold
a model must refuse it at save time with a message that points to the format
that can.

``keras.applications`` has 40 constructors in 14 architecture families; the
variants of a family share their code and differ in depth and width, so the
smallest of each family is built, at the smallest input it accepts. A test
checks that no constructor falls outside these families. Under a backend
other than TensorFlow two families stand for all of them.

Time goes into creating variables (a few milliseconds each on TensorFlow, and
NASNetMobile has 1,300 before an optimizer doubles them), once to build and
once per load. So the applications carry optimizer state only in the three
families in ``_WITH_OPTIMIZER``; an optimizer's state is one flat list of
variables whatever the architecture, and every other kind here carries it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from _keras_models import backend, keras, run_fresh, same_arrays, same_optimizer_state, same_weights  # noqa: F401

import nnsave
from nnsave import UnsupportedObjectError

SUFFIXES = (".keras", ".safetensors")

#: The smallest constructor of each family, and the smallest square input it takes.
APPLICATIONS = {
    "ConvNeXt": ("ConvNeXtTiny", 32), "DenseNet": ("DenseNet121", 32), "EfficientNet": ("EfficientNetB0", 32),
    "EfficientNetV2": ("EfficientNetV2B0", 32), "InceptionResNetV2": ("InceptionResNetV2", 75),
    "InceptionV3": ("InceptionV3", 75), "MobileNet": ("MobileNet", 32), "MobileNetV2": ("MobileNetV2", 32),
    "MobileNetV3": ("MobileNetV3Small", 32), "NASNet": ("NASNetMobile", 32), "ResNet": ("ResNet50", 32),
    "ResNetV2": ("ResNet50V2", 32), "VGG": ("VGG16", 32), "Xception": ("Xception", 71),
}
_ON_EVERY_BACKEND = ("MobileNetV3", "EfficientNet")
#: The families whose round trip includes optimizer state (few variables, or few layers).
_WITH_OPTIMIZER = ("MobileNetV3", "EfficientNet", "VGG")


def _family(constructor: str) -> str:
    """``EfficientNetV2B3`` → ``EfficientNetV2``, ``ResNet101V2`` → ``ResNetV2``: less the size."""
    constructor = re.sub(r"\d{2,3}(V2)$", r"\1", constructor)
    return re.sub(r"(Tiny|Small|Base|Large|XLarge|Mobile|\d{2,3}|B\d|[SML])$", "", constructor)


# --- how each kind of model is built ------------------------------------------

def _inputs_for(model, rows=2):
    """Deterministic inputs of the right shapes and dtypes for every model input."""
    rng = np.random.default_rng(7)
    made = []
    for tensor in model.inputs:
        shape = (rows, *[size for size in tensor.shape[1:]])
        dtype = str(tensor.dtype)
        made.append(rng.integers(0, 5, size=shape).astype(dtype) if "int" in dtype else rng.normal(size=shape).astype(dtype))
    return made if len(made) > 1 else made[0]


def _with_optimizer_state(keras, model, **compile_arguments):
    """Compile, then give the optimizer state as a few steps of training would."""
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), **{"loss": "mse", **compile_arguments})
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(3)
    for variable in model.optimizer.variables:
        value = 7 if "int" in str(variable.dtype) else rng.uniform(0.0, 0.01, size=variable.shape)
        variable.assign(np.asarray(value, dtype=str(variable.dtype)))
    return model


def _trained(keras, model, inputs, targets, **compile_arguments):
    model.compile(optimizer="adam", **{"loss": "mse", **compile_arguments})
    model.fit(inputs, targets, epochs=2, batch_size=4, verbose=0, shuffle=False)
    return model


def _application(keras, family):
    constructor, size = APPLICATIONS[family]
    build = getattr(keras.applications, constructor)
    model = build(weights=None, input_shape=(size, size, 3), classes=10)
    return (_with_optimizer_state(keras, model) if family in _WITH_OPTIMIZER else model), None


def _nested_and_shared(keras):
    encoder_input = keras.Input((6,))
    encoder = keras.Model(encoder_input, keras.layers.Dense(4, activation="relu", name="code")(encoder_input), name="encoder")
    left, right = keras.Input((6,), name="left"), keras.Input((6,), name="right")
    shared = keras.layers.Dense(3, name="shared")
    distance = keras.layers.Subtract()([shared(encoder(left)), shared(encoder(right))])
    model = keras.Model([left, right], keras.layers.Dense(1, name="score")(distance), name="siamese")
    return _with_optimizer_state(keras, model), None


def _custom_container(keras):
    @keras.saving.register_keras_serializable(package="nnsave_zoo")
    class Tower(keras.Model):
        """A subclassed model that holds its layers in a list and a dict."""

        def __init__(self, widths=(8, 4), **kwargs):
            super().__init__(**kwargs)
            self.widths = tuple(widths)
            self.blocks = [keras.layers.Dense(w, activation="relu") for w in self.widths]
            self.heads = {"out": keras.layers.Dense(2)}

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return self.heads["out"](x)

        def get_config(self):
            return {**super().get_config(), "widths": list(self.widths)}

    model = Tower(name="tower")
    X = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    return _trained(keras, model, X, X[:, :2]), X


def _bidirectional(keras):
    inputs = keras.Input((5, 3))
    sequence = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True), name="lstm")(inputs)
    summary = keras.layers.Bidirectional(keras.layers.GRU(3), merge_mode="sum", name="gru")(sequence)
    model = keras.Model(inputs, keras.layers.Dense(2)(summary))
    X = np.random.default_rng(0).normal(size=(8, 5, 3)).astype("float32")
    return _trained(keras, model, X, X[:, 0, :2]), X


def _normalization(keras):
    X = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 4)).astype("float32")
    scale = keras.layers.Normalization()
    scale.adapt(X)
    model = keras.Sequential([keras.Input((4,)), scale, keras.layers.Dense(2)])
    return _trained(keras, model, X, X[:, :2]), X


def _string_lookup(keras):
    lookup = keras.layers.StringLookup(vocabulary=["cat", "dog", "emu"], name="words")
    model = keras.Sequential([keras.Input((1,), dtype="string"), lookup, keras.layers.Embedding(5, 3), keras.layers.Flatten()])
    return model, np.array([["dog"], ["cat"], ["yak"]])


def _text_vectorization(keras):
    text = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=4, name="text")
    text.adapt(["the cat sat", "a dog ran far", "the dog sat"])
    model = keras.Sequential([keras.Input((), dtype="string"), text, keras.layers.Embedding(20, 3), keras.layers.GlobalAveragePooling1D()])
    return model, np.array(["the dog sat down", "a cat"])


def _quantized(mode):
    def build(keras):
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, name="a"), keras.layers.Dense(4, name="b")])
        model.quantize(mode)
        X = np.random.default_rng(0).normal(size=(8, 8)).astype("float32")
        return (_trained(keras, model, X, X[:, :4]) if mode == "float8" else model), X

    return build


def _custom_training(keras):
    @keras.saving.register_keras_serializable(package="nnsave_zoo")
    class ScaledError(keras.losses.Loss):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, y_true, y_pred):
            return self.factor * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    @keras.saving.register_keras_serializable(package="nnsave_zoo")
    class LargestError(keras.metrics.Metric):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.largest = self.add_variable(shape=(), initializer="zeros", name="largest")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.largest.assign(keras.ops.maximum(self.largest, keras.ops.max(keras.ops.abs(y_true - y_pred))))

        def result(self):
            return self.largest

    @keras.saving.register_keras_serializable(package="nnsave_zoo")
    class Stepping(keras.Sequential):
        """Counts its own training steps in a variable of its own."""

        def build(self, input_shape=None):
            super().build(input_shape)
            if not hasattr(self, "steps"):
                self.steps = self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name="steps")

        def train_step(self, *args, **kwargs):
            self.steps.assign_add(1)
            return super().train_step(*args, **kwargs)

    model = Stepping([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)], name="stepping")
    X = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    return _trained(keras, model, X, X[:, :2], loss=ScaledError(3.0), metrics=[LargestError()]), X


def _multi_output(outputs_as):
    def build(keras):
        image, meta = keras.Input((4,), name="image"), keras.Input((2,), name="meta")
        hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([image, meta]))
        score, label = keras.layers.Dense(1, name="score")(hidden), keras.layers.Dense(3, name="label")(hidden)
        outputs = {"score": score, "label": label} if outputs_as == "dict" else [score, label]
        model = keras.Model([image, meta], outputs)
        rng = np.random.default_rng(0)
        X = [rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")]
        targets = {"score": X[1][:, :1], "label": X[0][:, :3]}
        if outputs_as == "list":
            targets = [targets["score"], targets["label"]]
            return _trained(keras, model, X, targets, loss=["mse", "mae"], loss_weights=[1.0, 0.5]), X
        return _trained(keras, model, X, targets, loss={"score": "mse", "label": "mae"}), X

    return build


KINDS = {
    **{f"applications-{family}": (lambda keras, family=family: _application(keras, family)) for family in APPLICATIONS},
    "nested-shared-functional": _nested_and_shared,
    "custom-container": _custom_container,
    "bidirectional-rnn": _bidirectional,
    "normalization": _normalization,
    "string-lookup": _string_lookup,
    "text-vectorization": _text_vectorization,
    "quantized-int8": _quantized("int8"),
    "quantized-int4": _quantized("int4"),
    "quantized-float8": _quantized("float8"),
    "custom-train-step-loss-metric": _custom_training,
    "multi-output-list": _multi_output("list"),
    "multi-output-dict": _multi_output("dict"),
}
#: What .safetensors refuses, and the words its message must contain.
REFUSED = {
    ("string-lookup", ".safetensors"): r"'words' \(at layers/string_lookup\) keeps state in files .*Save the model as \.keras",
    ("text-vectorization", ".safetensors"): r"'text' \(at layers/text_vectorization\) keeps state in files .*Save the model as \.keras",
}
_STRING_KINDS = ("string-lookup", "text-vectorization")


#: A train_step that assigns a variable is TensorFlow code: JAX's is stateless.
_TENSORFLOW_ONLY = ("custom-train-step-loss-metric",)


def _kinds_here():
    if backend() == "tensorflow":
        return list(KINDS)
    return [
        kind for kind in KINDS
        if kind not in _TENSORFLOW_ONLY
        and (not kind.startswith("applications-") or kind.split("-", 1)[1] in _ON_EVERY_BACKEND)
    ]


@pytest.fixture(scope="module")
def built():
    """Each kind built once, shared by both formats."""
    return {}


def _model_of(kind, built, keras):
    """The model, its inputs and its outputs for them, made once per kind."""
    if kind not in built:
        model, inputs = KINDS[kind](keras)
        inputs = _inputs_for(model) if inputs is None else inputs
        built[kind] = (model, inputs, _outputs(model, inputs, kind))
    return built[kind]


def _outputs(model, inputs, kind):
    import keras

    if kind in _STRING_KINDS:
        # Strings reach Keras only through their preprocessing layer on
        # backends other than TensorFlow, so the layers are called one by one.
        for layer in model.layers:
            inputs = layer(inputs)
        return [inputs]
    return keras.tree.flatten(model(inputs, training=False))


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", _kinds_here())
def test_every_kind_round_trips(kind, suffix, built, keras, tmp_path):
    model, inputs, outputs = _model_of(kind, built, keras)
    refusal = REFUSED.get((kind, suffix))
    if refusal is not None:
        with pytest.raises(UnsupportedObjectError, match=refusal):
            nnsave.save(model, tmp_path / f"model{suffix}")
        return
    restored = nnsave.load(nnsave.save(model, tmp_path / f"model{suffix}"))
    assert same_arrays(outputs, _outputs(restored, inputs, kind))
    assert same_weights(model, restored)
    assert same_optimizer_state(model, restored)
    if kind == "custom-train-step-loss-metric":
        assert int(restored.steps) == int(model.steps) == 4
        restored.fit(inputs, inputs[:, :2], epochs=1, batch_size=4, verbose=0)  # the custom step runs
        assert int(restored.steps) == 6


def test_the_families_cover_every_application():
    import keras

    constructors = [name for name in dir(keras.applications) if name[0].isupper()]
    assert len(constructors) >= 40
    assert {_family(name) for name in constructors} == set(APPLICATIONS)


# --- mixed precision, loaded in a fresh process under the default policy -------

_TRAIN_MIXED = """
    import numpy as np, keras, nnsave, warnings
    keras.utils.set_random_seed(0)
    keras.config.set_dtype_policy("mixed_float16")
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, dtype="float32")(hidden))
    model.compile(optimizer="adam", loss="mse")
    X = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    model.fit(X, X[:, :3], epochs=2, verbose=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for suffix in (".keras", ".safetensors"):
            nnsave.save(model, "mixed" + suffix)
    print(type(model.optimizer).__name__, [w.category.__name__ for w in caught if "LossScale" in str(w.message)])
    np.save("inputs.npy", X)
    np.save("predictions.npy", keras.ops.convert_to_numpy(model(X)))
    np.savez("optimizer.npz", *[keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])
"""

_LOAD_MIXED = """
    import numpy as np, keras, nnsave
    if "{policy}" != "default":
        keras.config.set_dtype_policy("{policy}")
    for suffix in {suffixes}:
        try:
            model = nnsave.load("mixed" + suffix)
        except nnsave.FormatError as error:
            print("FormatError", "set_dtype_policy('mixed_float16')" in str(error), "compile=False" in str(error))
            model = nnsave.load("mixed" + suffix, compile=False)
        else:
            saved = np.load("optimizer.npz")
            state = [saved[f"arr_{{i}}"] for i in range(len(saved.files))]
            restored = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
            print(type(model.optimizer).__name__, len(state) == len(restored) and all(
                np.array_equal(a, b) for a, b in zip(state, restored)))
        predictions = keras.ops.convert_to_numpy(model(np.load("inputs.npy")))
        print(keras.config.dtype_policy().name, np.array_equal(predictions, np.load("predictions.npy")))
"""


def test_mixed_precision_in_a_fresh_process(tmp_path, keras):
    """.safetensors keeps the LossScaleOptimizer; .keras says clearly that it cannot, and how to."""
    assert run_fresh(_TRAIN_MIXED, tmp_path).split() == ["LossScaleOptimizer", "['UnportableObjectWarning']"]

    def fresh(suffixes, policy="default"):
        return run_fresh(_LOAD_MIXED.format(suffixes=suffixes, policy=policy), tmp_path).split()

    assert fresh([".safetensors", ".keras"]) == [
        "LossScaleOptimizer", "True", "float32", "True",  # .safetensors: all kept
        "FormatError", "True", "True", "float32", "True",  # .keras: says so, names the remedy
    ]
    assert fresh([".keras"], "mixed_float16") == ["LossScaleOptimizer", "True", "mixed_float16", "True"]
