"""Checkpointer, the index, retention, torn directories and exact resumes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import nnsave
from nnsave import storage
from nnsave.checkpoint import INDEX_NAME, CheckpointFallbackWarning, Checkpointer
from nnsave.errors import IntegrityError, InvalidArgumentError, NNSaveError, UnknownClassError, UntrustedFileError

FIT = {"batch_size": 64, "shuffle": False, "verbose": 0}


def make_model(keras, hidden=8):
    # Re-seeding here makes two calls build bitwise-identical initial weights.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def index_of(directory):
    return json.loads((Path(directory) / INDEX_NAME).read_text())


def kept_files(directory):
    return sorted(p.name for p in Path(directory).glob("ckpt-*.keras"))


def caught_warnings(function, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = function(*args, **kwargs)
    return result, [w for w in caught if issubclass(w.category, CheckpointFallbackWarning)]


def damage(path, data):
    """Replace a file's bytes but keep its times, as a disk fault would (a newer file reads as a stale manifest)."""
    status = os.stat(path)
    Path(path).write_bytes(data)
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))


def run_cli(*arguments):
    return subprocess.run([sys.executable, "-m", "nnsave", *arguments], capture_output=True, text=True, timeout=120)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"every_n_epochs": 0}, "every_n_epochs must be a whole number of at least 1, not 0"),
        ({"every_n_epochs": -2}, "every_n_epochs"),
        ({"every_n_epochs": 2.0}, "every_n_epochs"),
        ({"max_to_keep": 0}, "max_to_keep must be a whole number of at least 1, not 0"),
        ({"max_to_keep": -1}, "max_to_keep"),
        ({"mode": "lowest"}, "mode must be 'min'"),
        ({"keep_best": True}, "keep_best=True needs monitor"),
        ({"monitor": ""}, "monitor must be a key"),
        ({"save_on_train_end": "yes"}, "save_on_train_end must be True or False, not 'yes'"),
    ],
)
def test_checkpointer_rejects_bad_arguments(tmp_path, arguments, message):
    with pytest.raises(InvalidArgumentError, match=message):
        Checkpointer(tmp_path, **arguments)


def test_checkpointer_rejects_a_file_as_directory(tmp_path):
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        Checkpointer(target)


def test_missing_monitor_key_names_the_available_keys(keras, digits, tmp_path):
    X, y = digits
    model = make_model(keras)
    with pytest.raises(ValueError, match=r"monitor='val_acc'.*Available keys: accuracy, loss\. Pass validation data"):
        model.fit(X, y, epochs=1, callbacks=[Checkpointer(tmp_path / "run", monitor="val_acc")], **FIT)
    assert kept_files(tmp_path / "run") == []


def test_missing_and_empty_directories(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nnsave.latest_checkpoint(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nnsave.resume(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    assert nnsave.latest_checkpoint(tmp_path / "empty") is None
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        nnsave.resume(tmp_path / "empty")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        nnsave.latest_checkpoint(tmp_path / "file")


# --------------------------------------------------------------------------- saving


def test_period_metadata_and_created_directory(keras, digits, tmp_path):
    X, y = digits
    model = make_model(keras)
    directory = tmp_path / "deep" / "run"
    history = model.fit(X, y, epochs=7, callbacks=[Checkpointer(directory, every_n_epochs=3, save_on_train_end=False)], **FIT)
    assert kept_files(directory) == ["ckpt-00003.keras", "ckpt-00006.keras"]
    metadata = nnsave.verify(directory / "ckpt-00006.keras").metadata
    assert metadata["epoch"] == 6 and metadata["monitor"] is None
    # Exact floats: the manifest holds the very numbers fit() reported.
    assert metadata["logs"]["loss"] == history.history["loss"][5]
    assert metadata["logs"]["accuracy"] == history.history["accuracy"][5]
    index = index_of(directory)
    assert index["latest"] == "ckpt-00006.keras" and [e["epoch"] for e in index["checkpoints"]] == [3, 6]


def test_retention_keeps_max_to_keep_and_removes_manifests(keras, digits, tmp_path):
    X, y = digits
    make_model(keras).fit(X, y, epochs=5, callbacks=[Checkpointer(tmp_path, max_to_keep=2)], **FIT)
    assert kept_files(tmp_path) == ["ckpt-00004.keras", "ckpt-00005.keras"]
    assert sorted(p.name for p in tmp_path.glob("*.nnsave.json")) == [
        "ckpt-00004.keras.nnsave.json",
        "ckpt-00005.keras.nnsave.json",
    ]
    assert [e["file"] for e in index_of(tmp_path)["checkpoints"]] == kept_files(tmp_path)
    assert not [p for p in tmp_path.iterdir() if storage.is_temporary(p)]


def test_keep_best_outlives_max_to_keep(keras, digits, tmp_path):
    X, y = digits
    # The loss falls every epoch, so with mode="max" the best is the first epoch,
    # which plain retention would have deleted long ago.
    checkpointer = Checkpointer(tmp_path, max_to_keep=2, monitor="loss", mode="max", keep_best=True)
    history = make_model(keras).fit(X, y, epochs=5, callbacks=[checkpointer], **FIT)
    assert np.all(np.diff(history.history["loss"]) < 0)
    assert kept_files(tmp_path) == ["ckpt-00001.keras", "ckpt-00004.keras", "ckpt-00005.keras"]
    index = index_of(tmp_path)
    assert index["best"] == "ckpt-00001.keras" and index["latest"] == "ckpt-00005.keras"
    assert [e["value"] for e in index["checkpoints"]] == [history.history["loss"][i] for i in (0, 3, 4)]


def test_min_mode_best_without_keep_best(keras, digits, tmp_path):
    X, y = digits
    make_model(keras).fit(X, y, epochs=3, callbacks=[Checkpointer(tmp_path, max_to_keep=2, monitor="loss")], **FIT)
    index = index_of(tmp_path)
    assert kept_files(tmp_path) == ["ckpt-00002.keras", "ckpt-00003.keras"]
    assert index["best"] == "ckpt-00003.keras" and index["monitor"] == "loss"


def test_index_is_replaced_atomically(keras, digits, tmp_path, monkeypatch):
    X, y = digits
    model = make_model(keras)
    model.fit(X, y, epochs=1, callbacks=[Checkpointer(tmp_path)], **FIT)
    before = (tmp_path / INDEX_NAME).read_bytes()
    real_replace = os.replace

    def crash_on_index(source, target):
        if Path(target).name == INDEX_NAME:
            raise OSError("simulated crash while publishing the index")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash_on_index)
    with pytest.raises(OSError, match="simulated crash"):
        model.fit(X, y, initial_epoch=1, epochs=2, callbacks=[Checkpointer(tmp_path)], **FIT)
    monkeypatch.undo()
    # The old index is intact, no staged copy is left, and the checkpoint that
    # was saved before the crash is found anyway, with a warning.
    assert (tmp_path / INDEX_NAME).read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if storage.is_temporary(p)]
    latest, warned = caught_warnings(nnsave.latest_checkpoint, tmp_path)
    assert latest == tmp_path / "ckpt-00002.keras"
    assert len(warned) == 1 and "names ckpt-00001.keras, but ckpt-00002.keras is newer" in str(warned[0].message)


def test_restarting_earlier_removes_the_abandoned_later_checkpoints(keras, digits, tmp_path):
    X, y = digits
    make_model(keras).fit(X, y, epochs=4, callbacks=[Checkpointer(tmp_path)], **FIT)
    with pytest.warns(CheckpointFallbackWarning, match="ckpt-00003.keras, ckpt-00004.keras"):
        make_model(keras).fit(X, y, epochs=2, callbacks=[Checkpointer(tmp_path)], **FIT)
    assert kept_files(tmp_path) == ["ckpt-00001.keras", "ckpt-00002.keras"]
    assert index_of(tmp_path)["latest"] == "ckpt-00002.keras"
    _, warned = caught_warnings(nnsave.latest_checkpoint, tmp_path)
    assert warned == []


@pytest.mark.parametrize(("save_on_train_end", "expected"), [(True, [5, 10, 12]), (False, [5, 10])])
def test_the_last_epoch_is_saved_when_training_ends(keras, digits, tmp_path, save_on_train_end, expected):
    X, y = digits
    checkpointer = Checkpointer(tmp_path, every_n_epochs=5, max_to_keep=10, save_on_train_end=save_on_train_end)
    make_model(keras, hidden=2).fit(X[:64], y[:64], epochs=12, callbacks=[checkpointer], **FIT)
    assert kept_files(tmp_path) == [f"ckpt-{e:05d}.keras" for e in expected]
    assert index_of(tmp_path)["latest"] == f"ckpt-{expected[-1]:05d}.keras"
    assert nnsave.verify(tmp_path / f"ckpt-{expected[-1]:05d}.keras").metadata["epoch"] == expected[-1]


def test_an_epoch_saved_on_schedule_is_not_saved_again_at_the_end(keras, digits, tmp_path, monkeypatch):
    X, y = digits
    saved = []
    real_save = nnsave.api.save
    monkeypatch.setattr(nnsave.api, "save", lambda model, path, **kw: saved.append(path.name) or real_save(model, path, **kw))
    make_model(keras, hidden=2).fit(X[:64], y[:64], epochs=4, callbacks=[Checkpointer(tmp_path, every_n_epochs=2)], **FIT)
    assert saved == kept_files(tmp_path) == ["ckpt-00002.keras", "ckpt-00004.keras"]


# --------------------------------------------------------------------------- torn directories


@pytest.fixture(scope="module")
def three_checkpoints(tmp_path_factory, digits):
    nnsave.seed_everything(0)
    import keras

    directory = tmp_path_factory.mktemp("pristine")
    X, y = digits
    make_model(keras).fit(X, y, epochs=3, callbacks=[Checkpointer(directory, monitor="loss")], **FIT)
    return directory


@pytest.fixture
def torn(three_checkpoints, tmp_path):
    return Path(shutil.copytree(three_checkpoints, tmp_path / "run"))


def test_intact_directory_gives_the_latest_without_warning(torn):
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00003.keras" and warned == []


def test_leftover_temporary_files_are_ignored_quietly(torn):
    # A reader takes no lock, so it cannot tell a live save's staging file from a dead one's.
    (torn / f".ckpt-00004.keras{storage.TEMP_MARKER}deadbeef.keras").write_bytes(b"PK\x03\x04 half a zip")
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00003.keras" and warned == []


def test_checkpointer_cleans_leftovers_when_training_starts(torn, keras, digits):
    leftover = torn / f".ckpt-00004.keras{storage.TEMP_MARKER}deadbeef.keras"
    leftover.write_bytes(b"junk")
    model, epoch = nnsave.resume(torn)
    X, y = digits
    model.fit(X, y, initial_epoch=epoch, epochs=4, callbacks=[Checkpointer(torn, monitor="loss", max_to_keep=2)], **FIT)
    assert not leftover.exists() and kept_files(torn) == ["ckpt-00003.keras", "ckpt-00004.keras"]


def test_deleted_latest_falls_back(torn):
    (torn / "ckpt-00003.keras").unlink()
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00002.keras"
    message = str(warned[0].message)
    assert "ckpt-00003.keras: the file is gone" in message and "Using ckpt-00002.keras" in message


def test_corrupted_payload_falls_back(torn):
    payload = torn / "ckpt-00003.keras"
    data = bytearray(payload.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damage(payload, bytes(data))
    (model, epoch), warned = caught_warnings(nnsave.resume, torn)
    assert epoch == 2 and model.optimizer.iterations.numpy() > 0
    assert "ckpt-00003.keras: it does not match its manifest (changed)" in str(warned[0].message)


def test_payload_rewritten_after_its_manifest_falls_back(torn):
    (torn / "ckpt-00003.keras").write_bytes((torn / "ckpt-00002.keras").read_bytes())
    os.utime(torn / "ckpt-00003.keras", (2e9, 2e9))
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00002.keras"
    assert "ckpt-00003.keras: it does not match its manifest (stale manifest)" in str(warned[0].message)


def test_truncated_payload_and_missing_manifest_fall_back(torn):
    payload = torn / "ckpt-00003.keras"
    damage(payload, payload.read_bytes()[:100])
    (torn / "ckpt-00002.keras.nnsave.json").unlink()
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    message = str(warned[0].message)
    assert latest == torn / "ckpt-00001.keras"
    assert "truncated" in message and "ckpt-00002.keras: it has no manifest" in message


@pytest.mark.parametrize(
    "damage",
    [b"{not json", b"[]", b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "checkpoints": [{"file": "../../etc/passwd", "epoch": 1}]}'],
)
def test_corrupt_index_falls_back_to_the_files(torn, damage):
    (torn / INDEX_NAME).write_bytes(damage)
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00003.keras"
    assert f"{INDEX_NAME} is damaged" in str(warned[0].message)


def test_missing_index_falls_back_to_the_files(torn):
    (torn / INDEX_NAME).unlink()
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00003.keras" and f"{INDEX_NAME} is missing" in str(warned[0].message)


def test_stale_index_naming_an_older_checkpoint(torn):
    index = index_of(torn)
    index["checkpoints"] = index["checkpoints"][:1]
    index["latest"] = index["best"] = index["checkpoints"][0]["file"]
    (torn / INDEX_NAME).write_text(json.dumps(index))
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00003.keras" and "is newer" in str(warned[0].message)


def test_nothing_intact_left(torn):
    for payload in torn.glob("ckpt-*.keras"):
        damage(payload, b"PK\x03\x04 overwritten")
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest is None and "No usable checkpoint is left" in str(warned[0].message)
    with pytest.raises(IntegrityError, match="holds 3 checkpoint"), warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointFallbackWarning)
        nnsave.resume(torn)


def restarted_checkpointer(keras, directory):
    checkpointer = Checkpointer(directory, monitor="loss")
    checkpointer.set_model(make_model(keras))
    checkpointer.on_train_begin()
    return checkpointer


def test_a_restart_never_leaves_readers_without_a_checkpoint(torn, keras, monkeypatch):
    (torn / "ckpt-00001.keras").unlink()  # every checkpoint left is later than the restart
    seen = []
    real_save = nnsave.api.save

    def save_watched_by_a_reader(model, path, **options):
        seen.append(caught_warnings(nnsave.latest_checkpoint, torn))
        saved = real_save(model, path, **options)
        seen.append(caught_warnings(nnsave.latest_checkpoint, torn))
        return saved

    monkeypatch.setattr(nnsave.api, "save", save_watched_by_a_reader)
    with pytest.warns(CheckpointFallbackWarning, match="over a run that went further"):
        restarted_checkpointer(keras, torn).save(1, {"loss": 1.0})
    (before, warned_before), (after, warned_after) = seen
    assert before == torn / "ckpt-00003.keras" and "restarted before are left; ckpt-00003.keras" in str(warned_before[0].message)
    assert after == torn / "ckpt-00001.keras" and warned_after == []
    assert kept_files(torn) == ["ckpt-00001.keras"] and index_of(torn)["abandoned"] == ["ckpt-00002.keras", "ckpt-00003.keras"]
    assert nnsave.latest_checkpoint(torn) == torn / "ckpt-00001.keras"


def test_a_restart_that_dies_before_deleting_leaves_the_abandoned_run_marked(torn, keras, monkeypatch):
    def die(model, path, **options):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(nnsave.api, "save", die)
    with pytest.raises(KeyboardInterrupt), pytest.warns(CheckpointFallbackWarning):
        restarted_checkpointer(keras, torn).save(1, {"loss": 1.0})
    monkeypatch.undo()
    assert kept_files(torn) == ["ckpt-00001.keras", "ckpt-00002.keras", "ckpt-00003.keras"]
    # Readers know the later two for what they are: the answer is the restarted run's own.
    latest, warned = caught_warnings(nnsave.latest_checkpoint, torn)
    assert latest == torn / "ckpt-00001.keras" and warned == []
    assert [row.latest for row in nnsave.list_checkpoints(torn)] == [True, False, False]
    # The next save of the restarted run finishes the deletion, and says nothing more.
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointFallbackWarning)
        restarted_checkpointer(keras, torn).save(2, {"loss": 0.5})
        assert kept_files(torn) == ["ckpt-00001.keras", "ckpt-00002.keras"]
        assert nnsave.verify(torn / "ckpt-00002.keras").metadata["logs"] == {"loss": 0.5}
        # The index forgets a deleted name at the save after.
        assert index_of(torn)["abandoned"] == ["ckpt-00003.keras"]
        restarted_checkpointer(keras, torn).save(3, {"loss": 0.25})
    assert index_of(torn)["abandoned"] == [] and kept_files(torn)[-1] == "ckpt-00003.keras"


@pytest.mark.parametrize("read", [nnsave.latest_checkpoint, nnsave.resume], ids=["latest_checkpoint", "resume"])
def test_a_reader_whose_candidates_vanish_surveys_again(torn, keras, monkeypatch, read):
    # While the reader opens ckpt-00003.keras, training goes on: three more
    # checkpoints, and retention deletes every one the reader had surveyed.
    writer = Checkpointer(torn, monitor="loss", max_to_keep=3)
    writer.set_model(make_model(keras))
    real_open = storage.open_regular
    trained_on = []

    def open_while_training_goes_on(path):
        if Path(path).name == "ckpt-00003.keras" and not trained_on:
            trained_on.append(True)
            for epoch in (4, 5, 6):
                writer.save(epoch, {"loss": 1 / epoch})
        return real_open(path)

    monkeypatch.setattr(storage, "open_regular", open_while_training_goes_on)
    answer, warned = caught_warnings(read, torn)
    assert trained_on and kept_files(torn) == ["ckpt-00004.keras", "ckpt-00005.keras", "ckpt-00006.keras"]
    assert (answer[1] if read is nnsave.resume else answer) == (6 if read is nnsave.resume else torn / "ckpt-00006.keras")
    assert warned == []


# --------------------------------------------------------------------------- exact resume


def optimizer_state(model):
    return [np.array(v) for v in model.optimizer.variables]


def test_resume_is_bitwise_identical_to_training_straight_through(keras, digits, tmp_path):
    X, y = digits
    straight = make_model(keras)
    straight.fit(X, y, epochs=10, **FIT)

    first_half = make_model(keras)
    first_half.fit(X, y, epochs=5, callbacks=[Checkpointer(tmp_path, every_n_epochs=5)], **FIT)
    del first_half
    resumed, initial_epoch = nnsave.resume(tmp_path)
    assert initial_epoch == 5 and resumed.optimizer.iterations.numpy() == 5 * 5
    resumed.fit(X, y, initial_epoch=initial_epoch, epochs=10, callbacks=[Checkpointer(tmp_path, every_n_epochs=5)], **FIT)

    assert len(straight.weights) == len(resumed.weights) == 4
    for a, b in zip(straight.weights, resumed.weights):
        assert np.array_equal(np.array(a), np.array(b)), a.path
    state_a, state_b = optimizer_state(straight), optimizer_state(resumed)
    assert len(state_a) == len(state_b) == 2 + 2 * 4
    assert all(np.array_equal(a, b) for a, b in zip(state_a, state_b))
    assert nnsave.latest_checkpoint(tmp_path) == tmp_path / "ckpt-00010.keras"


def test_resume_refuses_a_tensorflow_checkpoint(keras, tmp_path):
    import tensorflow as tf

    tf.train.Checkpoint(v=tf.Variable(1.0)).save(str(tmp_path / "ckpt"))
    with pytest.raises(NNSaveError, match="holds variables but no model"):
        nnsave.resume(tmp_path)


# --------------------------------------------------------------------------- custom training loops


def custom_loop(keras, tf, X, y, directory, *, stop_at, fresh_objects=True):
    """The restore_tf_checkpoint recipe: train until `stop_at` epochs, resuming if possible."""
    model = make_model(keras)
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)
    epoch = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
    manager = tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=3)
    restored = nnsave.restore_tf_checkpoint(checkpoint, manager)
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    while int(epoch) < stop_at:
        for start in range(0, len(X), 64):  # a fixed data order
            xb, yb = X[start : start + 64], y[start : start + 64]
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        epoch.assign_add(1)
        manager.save(checkpoint_number=int(epoch))
    return model, optimizer, restored


def test_checkpoint_manager_recipe_resumes_bitwise(keras, digits, tmp_path):
    import tensorflow as tf

    X, y = digits
    straight, straight_opt, restored = custom_loop(keras, tf, X, y, tmp_path / "straight", stop_at=6)
    assert restored is None
    custom_loop(keras, tf, X, y, tmp_path / "split", stop_at=3)
    resumed, resumed_opt, restored = custom_loop(keras, tf, X, y, tmp_path / "split", stop_at=6)
    assert restored == tmp_path / "split" / "ckpt-3"
    assert all(np.array_equal(np.array(a), np.array(b)) for a, b in zip(straight.weights, resumed.weights))
    assert len(straight_opt.variables) == 10 and all(
        np.array_equal(np.array(a), np.array(b)) for a, b in zip(straight_opt.variables, resumed_opt.variables)
    )
    assert nnsave.latest_checkpoint(tmp_path / "split") == tmp_path / "split" / "ckpt-6"


def test_checkpoint_manager_recipe_skips_a_torn_checkpoint(keras, digits, tmp_path):
    import tensorflow as tf

    X, y = digits
    custom_loop(keras, tf, X, y, tmp_path, stop_at=3)
    next(tmp_path.glob("ckpt-3.data-*")).unlink()
    with pytest.warns(CheckpointFallbackWarning, match="skipped ckpt-3: no ckpt-3.data-\\* shard exists"):
        assert nnsave.latest_checkpoint(tmp_path) == tmp_path / "ckpt-2"
    with pytest.warns(CheckpointFallbackWarning, match="Using ckpt-2"):
        _, optimizer, restored = custom_loop(keras, tf, X, y, tmp_path, stop_at=0)
    assert restored == tmp_path / "ckpt-2" and int(optimizer.iterations) == 2 * 5


def test_checkpoint_manager_recipe_demands_built_objects(keras, tmp_path):
    import tensorflow as tf

    model = make_model(keras)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model, optimizer=optimizer), str(tmp_path), 1).save()
    unbuilt = tf.train.Checkpoint(model=make_model(keras), optimizer=keras.optimizers.Adam())
    with pytest.raises(NNSaveError, match=r"Unresolved object.*optimizer.build\(model.trainable_variables\)"):
        nnsave.restore_tf_checkpoint(unbuilt, tf.train.CheckpointManager(unbuilt, str(tmp_path), 1))
    assert nnsave.restore_tf_checkpoint(unbuilt, tf.train.CheckpointManager(unbuilt, str(tmp_path / "new"), 1)) is None


# --------------------------------------------------------------------------- warnings point at the caller


def fallback_warning_at(caught):
    """Where the one CheckpointFallbackWarning among ``caught`` points, and what it says."""
    (warning,) = [w for w in caught if issubclass(w.category, CheckpointFallbackWarning)]
    return Path(warning.filename).name, warning.lineno, str(warning.message)


def test_warnings_point_at_the_callers_line(torn, keras, digits):
    here = Path(__file__).name
    (torn / "ckpt-00003.keras").unlink()
    (torn / INDEX_NAME).unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        nnsave.latest_checkpoint(torn)
    assert fallback_warning_at(caught)[:2] == (here, line)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        model, epoch = nnsave.resume(torn)
    assert fallback_warning_at(caught)[:2] == (here, line) and epoch == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        nnsave.list_checkpoints(torn)
    assert fallback_warning_at(caught)[:2] == (here, line)
    # Inside fit, the caller is the fit call, not Keras's callback machinery.
    X, y = digits
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        model.fit(X[:64], y[:64], initial_epoch=0, epochs=1, callbacks=[Checkpointer(torn, monitor="loss")], **FIT)
    filename, lineno, message = fallback_warning_at(caught)
    assert (filename, lineno) == (here, line) and "saving epoch 1 over a run that went further" in message


# --------------------------------------------------------------------------- resume passes its arguments on


def plant_unsigned(directory, source, epoch):
    """Copy checkpoint ``source`` as the checkpoint of ``epoch``, its manifest intact but unsigned."""
    target = directory / f"ckpt-{epoch:05d}.keras"
    shutil.copyfile(directory / source, target)
    manifest = json.loads((directory / (source + ".nnsave.json")).read_text())
    del manifest["signature"]
    manifest["metadata"]["epoch"] = epoch
    (directory / (target.name + ".nnsave.json")).write_text(json.dumps(manifest))
    return target


@pytest.fixture
def lambda_checkpoints(keras, digits, tmp_path):
    """Two epochs of a model with a Lambda layer and a custom, unregistered layer."""

    class Halve(keras.layers.Layer):
        def call(self, inputs):
            return inputs / 2

    X, y = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Lambda(lambda x: x * 2), Halve(), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X[:64], y[:64], epochs=2, callbacks=[Checkpointer(tmp_path)], **FIT)
    return tmp_path, model.predict(X[:8], verbose=0), {"Halve": Halve}


def test_resume_passes_safe_mode_compile_and_custom_objects(lambda_checkpoints, digits):
    directory, expected, custom_objects = lambda_checkpoints
    X, _ = digits
    with pytest.raises(UntrustedFileError, match="in safe mode: .*Lambda.*safe_mode=False"):
        nnsave.resume(directory, custom_objects=custom_objects)
    with pytest.raises(UnknownClassError, match="Halve"):
        nnsave.resume(directory, safe_mode=False)
    # Signed with this user's key, so no trusted=True is needed.
    model, epoch = nnsave.resume(directory, safe_mode=False, custom_objects=custom_objects)
    assert epoch == 2 and model.optimizer is not None
    assert np.array_equal(model.predict(X[:8], verbose=0), expected)
    uncompiled, _ = nnsave.resume(directory, safe_mode=False, compile=False, custom_objects=custom_objects)
    assert not uncompiled.compiled


def test_unsafe_resume_skips_an_unsigned_newer_checkpoint(lambda_checkpoints):
    directory, _, custom_objects = lambda_checkpoints
    plant_unsigned(directory, "ckpt-00002.keras", 7)
    (_, epoch), warned = caught_warnings(nnsave.resume, directory, safe_mode=False, custom_objects=custom_objects)
    assert epoch == 2 and "skipped ckpt-00007.keras: it is unsigned, not signed with your own key (id " in str(warned[0].message)
    # Vouching for the whole directory takes the planted one, which the index does not know.
    (_, epoch), warned = caught_warnings(nnsave.resume, directory, safe_mode=False, trusted=True, custom_objects=custom_objects)
    assert epoch == 7 and "the index names ckpt-00002.keras, but ckpt-00007.keras is newer" in str(warned[0].message)


# --------------------------------------------------------------------------- the command line and the import


def test_ls_lists_checkpoints_on_one_screen(keras, digits, tmp_path):
    X, y = digits
    make_model(keras, hidden=2).fit(X[:64], y[:64], epochs=20, callbacks=[Checkpointer(tmp_path, max_to_keep=20, monitor="loss")], **FIT)
    result = run_cli("ls", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["file", "epoch", "loss", "size", "verifies"]
    assert "5 older not shown" in lines[1]
    assert lines[-1].startswith("ckpt-00020.keras") and lines[-1].endswith("yes  latest best")
    assert len(lines) <= 24 and max(map(len, lines)) <= 120
    assert len(run_cli("ls", "--all", str(tmp_path)).stdout.splitlines()) == 21


def test_ls_reports_damage_and_bad_directories(torn, tmp_path):
    damage(torn / "ckpt-00002.keras", b"PK\x03\x04 overwritten")
    result = run_cli("ls", str(torn))
    assert result.returncode == 1
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert "NO:" in rows["ckpt-00002.keras"] and rows["ckpt-00003.keras"].endswith("yes  latest best")
    missing = run_cli("ls", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = run_cli("ls", str(tmp_path / "empty"))
    assert empty.returncode == 0 and "no checkpoints" in empty.stdout


def test_import_nnsave_stays_light():
    code = "import sys, nnsave; nnsave.legacy; assert not {'keras', 'tensorflow'} & set(sys.modules), sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert {"Checkpointer", "latest_checkpoint", "resume", "restore_tf_checkpoint"} <= set(nnsave.__all__)
    assert nnsave.Checkpointer is Checkpointer
