"""TensorFlow checkpoints: state files, inspection, and migrating TF1 weights into Keras."""

from __future__ import annotations

import doctest
import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnsave
import nnsave.legacy
from nnsave.checkpoint import CheckpointFallbackWarning
from nnsave.errors import FormatError
from nnsave.legacy import (
    TF_STATE_NAME,
    TFState,
    WeightMismatchError,
    assign_tf1_weights,
    checkpoint_files,
    load_tf1_variables,
    parse_tf_state,
    tf_checkpoint_prefix,
)

# The articles' TF1 program, brought up to date only as far as tf.compat.v1
# demands: a softmax regression on 8x8 digits, saved every 5 steps.
TF1_PROGRAM = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_digits

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    tf1.set_random_seed(0)
    out = sys.argv[1]
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32")
    Y = np.eye(10, dtype="float32")[y]

    x = tf1.placeholder(tf.float32, shape=[None, 64])
    y_ = tf1.placeholder(tf.float32, shape=[None, 10])
    W = tf1.Variable(tf1.random_normal([64, 10], stddev=0.1), name="W")
    b = tf1.Variable(tf1.zeros([10]), name="b")
    logits = tf1.matmul(x, W) + b
    pred = tf1.nn.softmax(logits)
    loss = tf1.reduce_mean(tf1.nn.softmax_cross_entropy_with_logits_v2(labels=y_, logits=logits))
    train = tf1.train.GradientDescentOptimizer(0.5).minimize(loss)
    saver = tf1.train.Saver()

    with tf1.Session() as sess:
        sess.run(tf1.global_variables_initializer())
        for step in range(50):
            start = (step * 128) % (len(X) - 128)
            sess.run(train, feed_dict={x: X[start:start + 128], y_: Y[start:start + 128]})
            if step % 5 == 0:
                saver.save(sess, os.path.join(out, "model.ckpt"), global_step=step)
        latest = tf1.train.latest_checkpoint(out)
        saver.restore(sess, latest)
        np.save(os.path.join(out, "predictions.npy"), sess.run(pred, feed_dict={x: X}))
    with open(os.path.join(out, "latest.json"), "w") as handle:
        json.dump({"latest": latest}, handle)
    """
)


@pytest.fixture(scope="module")
def tf1_run(tmp_path_factory):
    """A directory of TF1 Saver checkpoints, made in a separate graph-mode process."""
    directory = tmp_path_factory.mktemp("tf1")
    script = directory / "train_tf1.py"
    script.write_text(TF1_PROGRAM)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "PYTHONHASHSEED": "0"}
    result = subprocess.run(
        [sys.executable, str(script), str(directory)], capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    script.unlink()
    return directory


@pytest.fixture
def tf1_copy(tf1_run, tmp_path):
    return Path(shutil.copytree(tf1_run, tmp_path / "tf1"))


def softmax_model(keras, units=10, dtype="float32"):
    return keras.Sequential([keras.Input((64,), dtype=dtype), keras.layers.Dense(units, activation="softmax", dtype=dtype)])


def all_digits():
    from sklearn.datasets import load_digits

    return (load_digits().data / 16.0).astype("float32")


# --------------------------------------------------------------------------- finding and inspecting


def test_latest_checkpoint_reads_the_saver_state_file(tf1_run):
    expected = Path(json.loads((tf1_run / "latest.json").read_text())["latest"])
    assert expected.name == "model.ckpt-45"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nnsave.latest_checkpoint(tf1_run) == expected


def test_inspect_lists_tf1_variables(tf1_run):
    prefix = tf1_run / "model.ckpt-45"
    info = nnsave.inspect(prefix)
    assert info.format == "tf-checkpoint" and info.integrity is nnsave.Integrity.NO_MANIFEST
    assert info.details["kind"] == "TF1 name-based" and info.details["files"] == 2
    assert info.variables == [
        {"name": "W", "shape": [64, 10], "dtype": "float32"},
        {"name": "b", "shape": [10], "dtype": "float32"},
    ]
    assert info.size == sum(p.stat().st_size for p in checkpoint_files(prefix)[0])
    text = str(info)
    assert "variables    : 2" in text and "float32  (64, 10)" in text and "blake3" not in text
    for name in ("model.ckpt-45.index", "model.ckpt-45.data-00000-of-00001"):
        assert tf_checkpoint_prefix(tf1_run / name) == prefix
    assert tf_checkpoint_prefix(tf1_run / "latest.json") is None


def test_inspect_lists_tf2_object_based_variables(tmp_path):
    nnsave.seed_everything(0)
    import tensorflow as tf

    prefix = tf.train.Checkpoint(w=tf.Variable(np.ones((2, 3), "float64"))).save(str(tmp_path / "ckpt"))
    info = nnsave.inspect(prefix)
    assert info.details["kind"] == "TF2 object-based"
    assert {"name": "w/.ATTRIBUTES/VARIABLE_VALUE", "shape": [2, 3], "dtype": "float64"} in info.variables
    assert all(v["name"] != "_CHECKPOINTABLE_OBJECT_GRAPH" for v in info.variables)


def test_cli_inspects_a_prefix_and_lists_a_tf_directory(tf1_run):
    run = lambda *a: subprocess.run([sys.executable, "-m", "nnsave", *a], capture_output=True, text=True, timeout=120)  # noqa: E731
    inspected = run("inspect", str(tf1_run / "model.ckpt-45"))
    assert inspected.returncode == 0, inspected.stderr
    assert "tf-checkpoint" in inspected.stdout and "TF1 name-based" in inspected.stdout
    assert [line.split()[0] for line in inspected.stdout.splitlines() if line.startswith("    ")] == ["W", "b"]
    listed = run("ls", str(tf1_run))
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == [f"model.ckpt-{s}" for s in (25, 30, 35, 40, 45)]
    assert rows[-1].endswith("files ok  latest") and rows[0].split()[1] == "25"


def test_state_file_with_absolute_paths_survives_a_move(tf1_run, tf1_copy):
    state = (tf1_copy / "checkpoint").read_text()
    # The Saver wrote absolute paths to the original folder, which still exists;
    # the copy must still resolve to its own files.
    assert f'"{tf1_run}/model.ckpt-45"' in state and str(tf1_copy) not in state
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nnsave.latest_checkpoint(tf1_copy) == tf1_copy / "model.ckpt-45"


def test_torn_tf_directory_falls_back(tf1_copy):
    (tf1_copy / "model.ckpt-45.index").unlink()
    with pytest.warns(CheckpointFallbackWarning, match="skipped model.ckpt-45: model.ckpt-45.index is missing"):
        assert nnsave.latest_checkpoint(tf1_copy) == tf1_copy / "model.ckpt-40"
    (tf1_copy / "checkpoint").unlink()
    with pytest.warns(CheckpointFallbackWarning, match="state file|checkpoint file is missing"):
        assert nnsave.latest_checkpoint(tf1_copy) == tf1_copy / "model.ckpt-40"
    (tf1_copy / "checkpoint").write_text("garbage without the field\n")
    with pytest.warns(CheckpointFallbackWarning, match="checkpoint file is damaged"):
        assert nnsave.latest_checkpoint(tf1_copy) == tf1_copy / "model.ckpt-40"


def test_parse_tf_state(tmp_path):
    state = (
        b'model_checkpoint_path: "sub/ckpt-3"\n'
        b'all_model_checkpoint_paths: "ckpt-1"\n'
        b'all_model_checkpoint_paths: "sub/ckpt-3"\n'
        b"all_model_checkpoint_timestamps: 1700000000.5\n"
        b'all_model_checkpoint_paths: "we\\"ird \\303\\251 \\x41\\t"\n'
    )
    parsed = parse_tf_state(state, tmp_path)
    assert parsed == TFState([tmp_path / "sub/ckpt-3", tmp_path / 'we"ird \u00e9 A\t', tmp_path / "ckpt-1"], [])
    with pytest.raises(FormatError, match="names no model_checkpoint_path"):
        parse_tf_state(b'all_model_checkpoint_paths: "ckpt-1"\n', tmp_path)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("model.ckpt-7", "model.ckpt-7"),
        ("./sub/../model.ckpt-7", "model.ckpt-7"),
        ("/home/someone/run/model.ckpt-7", "model.ckpt-7"),  # TF1's Saver, on another machine
        ("C:\\\\runs\\\\model.ckpt-7", "model.ckpt-7"),  # and on Windows
        ("../outside/model.ckpt-7", None),
        ("sub/../../outside/model.ckpt-7", None),
        ("..", None),
        (".", None),
        ("", None),
        ("/", None),
        ("/run/..", None),
        ("nul\\000byte", None),
        ("link/model.ckpt-7", None),  # a subdirectory that is a link to elsewhere
    ],
)
def test_state_file_paths_stay_inside_the_directory(tmp_path, value, expected):
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / "link").symlink_to(tmp_path)
    parsed = parse_tf_state(f'model_checkpoint_path: "{value}"\n'.encode(), directory)
    if expected is None:
        assert parsed.prefixes == [] and len(parsed.outside) == 1
    else:
        assert parsed == TFState([directory / expected], [])


@pytest.mark.parametrize(
    "state",
    [b'model_checkpoint_path: "bad \\q escape"', b'model_checkpoint_path: "\\777"', b'model_checkpoint_path: "\\377"', b"\xff\xfe", b"", b'model_checkpoint_path: 12', b'model_checkpoint_path: ["a", "b"]'],
    ids=["unknown escape", "octal beyond a byte", "not UTF-8 once unescaped", "not UTF-8", "empty", "a number", "a list"],
)
def test_a_malformed_state_file_is_a_format_error(tmp_path, state):
    with pytest.raises(FormatError, match=f"{TF_STATE_NAME}"):
        parse_tf_state(state, tmp_path)


def test_docstring_examples():
    results = doctest.testmod(nnsave.legacy, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 3 and results.failed == 0


state_lines = st.lists(
    st.tuples(st.sampled_from(["model_checkpoint_path", "all_model_checkpoint_paths", "other"]), st.text(max_size=40)),
    max_size=6,
)


@given(state_lines)
def test_any_state_file_parses_inside_the_directory_or_is_a_format_error(lines):
    directory = Path("/nonexistent/run")
    text = "\n".join(f'{field}: "{value}"' for field, value in lines)
    try:
        parsed = parse_tf_state(text.encode("utf-8", "surrogatepass"), directory)
    except FormatError:
        return
    assert all(prefix.parent == directory or directory in prefix.parents for prefix in parsed.prefixes)
    assert all(".." not in prefix.relative_to(directory).parts for prefix in parsed.prefixes)


# --------------------------------------------------------------------------- migrating


def test_tf1_softmax_regression_migrates_to_keras(tf1_run, tmp_path):
    nnsave.seed_everything(0)
    import keras

    prefix = nnsave.latest_checkpoint(tf1_run)
    variables = load_tf1_variables(prefix)
    assert {name: value.shape for name, value in variables.items()} == {"W": (64, 10), "b": (10,)}

    by_shape, by_name = softmax_model(keras), softmax_model(keras)
    kernel, bias = (weight.path for weight in by_shape.weights)
    assert assign_tf1_weights(by_shape, prefix) == {kernel: "W", bias: "b"}
    kernel, bias = (weight.path for weight in by_name.weights)
    assign_tf1_weights(by_name, prefix, mapping={"W": kernel, "b": bias})
    assert np.array_equal(np.array(by_shape.weights[0]), variables["W"])

    X = all_digits()
    expected = np.load(tf1_run / "predictions.npy")
    predicted = by_shape.predict(X, verbose=0)
    difference = float(np.max(np.abs(predicted - expected)))
    print(f"TF1 session vs Keras: max |difference| = {difference:.3e}")
    assert difference <= 1e-6
    assert np.array_equal(predicted.argmax(axis=1), expected.argmax(axis=1))
    assert np.array_equal(by_name.predict(X, verbose=0), predicted)

    saved = nnsave.save(by_shape, tmp_path / "softmax.keras", metadata={"migrated_from": prefix.name})
    assert nnsave.verify(saved).metadata == {"migrated_from": "model.ckpt-45"}
    assert np.array_equal(nnsave.load(saved).predict(X, verbose=0), predicted)


def test_mismatches_name_the_variable_and_both_shapes(tf1_run):
    nnsave.seed_everything(0)
    import keras

    prefix = tf1_run / "model.ckpt-45"
    narrow = softmax_model(keras, units=5)
    kernel, bias = (weight.path for weight in narrow.weights)
    untouched = [np.array(w) for w in narrow.weights]
    with pytest.raises(WeightMismatchError, match=rf"No variable of shape \(64, 5\) .* '{kernel}'.*W \(64, 10\)"):
        assign_tf1_weights(narrow, prefix)
    with pytest.raises(WeightMismatchError, match=rf"'W' .* has shape \(64, 10\), but the model weight '{kernel}' has shape \(64, 5\)"):
        assign_tf1_weights(narrow, prefix, mapping={"W": kernel, "b": bias})
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(untouched, narrow.weights))

    model = softmax_model(keras)
    kernel, bias = (weight.path for weight in model.weights)
    with pytest.raises(WeightMismatchError, match=r"mapping names 'Weights'.* It has: W \(64, 10\), b \(10,\)"):
        assign_tf1_weights(model, prefix, mapping={"Weights": kernel})
    with pytest.raises(WeightMismatchError, match=rf"no weight with that path. Its weights are: {kernel} \(64, 10\)"):
        assign_tf1_weights(model, prefix, mapping={"W": "no/such/kernel"})
    with pytest.raises(WeightMismatchError, match=rf"leaves 1 model weights without a value: {bias} \(10,\)"):
        assign_tf1_weights(model, prefix, mapping={"W": kernel})
    with pytest.raises(WeightMismatchError, match="both 'W' and 'b'"):
        assign_tf1_weights(model, prefix, mapping={"W": kernel, "b": kernel})

    deeper = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10), keras.layers.Dense(10)])
    with pytest.raises(WeightMismatchError, match="has 4 weights but .* holds 2 model variables"):
        assign_tf1_weights(deeper, prefix)
    with pytest.raises(WeightMismatchError, match="Dtype mismatch: .* float32, but the model weight .* float64"):
        assign_tf1_weights(softmax_model(keras, dtype="float64"), prefix)
    with pytest.raises(WeightMismatchError, match="no weights yet"):
        assign_tf1_weights(keras.Sequential([keras.layers.Dense(10)]), prefix)


def test_bad_prefixes(tf1_copy, tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a TensorFlow checkpoint"):
        load_tf1_variables(tmp_path / "nothing-here")
    (tf1_copy / "model.ckpt-40.data-00000-of-00001").unlink()
    with pytest.raises(FormatError, match="not a complete TensorFlow checkpoint: no model.ckpt-40.data"):
        load_tf1_variables(tf1_copy / "model.ckpt-40")
    with pytest.raises(FormatError, match="not a complete"):
        nnsave.inspect(tf1_copy / "model.ckpt-40")
    (tf1_copy / "model.ckpt-45.index").write_bytes(b"not an sstable")
    with pytest.raises(FormatError, match="cannot be read as a TensorFlow checkpoint"):
        load_tf1_variables(tf1_copy / "model.ckpt-45")
