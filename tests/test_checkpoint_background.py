"""Checkpointer(background=True): the snapshot comes first, one save in flight, no lost errors, kills."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import nnsave
from nnsave.checkpoint import CheckpointFallbackWarning, Checkpointer
from nnsave.errors import InvalidArgumentError
from nnsave.formats import handler_for_path

FIT = {"batch_size": 64, "shuffle": False, "verbose": 0}


def make_model(keras):
    # The same recipe as tests/test_checkpoint.py: bitwise-identical initial weights on every call.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(10, activation="softmax")]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def state_of(model):
    """Every weight and optimizer variable, copied."""
    return [np.array(v) for v in model.weights] + [np.array(v) for v in model.optimizer.variables]


def assert_same_state(a, b):
    assert len(a) == len(b)
    for left, right in zip(a, b):
        assert np.array_equal(left, right)


def scramble(model):
    """Change every weight and optimizer variable, as the next training steps would."""
    for variable in [*model.weights, *model.optimizer.variables]:
        variable.assign(np.full(variable.shape, 7, dtype=variable.dtype))


class Gate:
    """Stands in for ``nnsave.api.save``: each call waits until the test opens the gate."""

    def __init__(self, monkeypatch):
        self.real_save = nnsave.api.save
        self.opened = threading.Event()
        self.entered = threading.Event()
        self.threads: list[str] = []
        monkeypatch.setattr(nnsave.api, "save", self)

    def __call__(self, obj, path, **options):
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.opened.wait(60), "the test never opened the gate"
        return self.real_save(obj, path, **options)


def test_background_must_be_a_bool(tmp_path):
    with pytest.raises(InvalidArgumentError, match="background must be True or False, not 'yes'"):
        Checkpointer(tmp_path, background="yes")


def test_save_returns_before_the_file_is_written_and_the_file_holds_the_state_at_the_call(keras, digits, tmp_path, monkeypatch):
    X, y = digits
    model = make_model(keras)
    model.fit(X, y, epochs=1, **FIT)
    before = state_of(model)
    gate = Gate(monkeypatch)
    checkpointer = Checkpointer(tmp_path, background=True)
    checkpointer.set_model(model)
    target = checkpointer.save(1, {"loss": 0.5})
    assert gate.entered.wait(60) and gate.threads == ["nnsave-checkpoint"]
    assert not target.exists()  # save returned; the write waits at the gate
    scramble(model)  # training goes on and changes everything
    gate.opened.set()
    checkpointer.wait()
    loaded = nnsave.load(target)
    assert_same_state(state_of(loaded), before)
    assert nnsave.verify(target).metadata == {"epoch": 1, "monitor": None, "logs": {"loss": 0.5}}
    assert nnsave.latest_checkpoint(tmp_path) == target


class Scrambler:
    """A callback after the Checkpointer that records the state it saw, then changes it all."""

    def __init__(self, keras):
        class Callback(keras.callbacks.Callback):
            def on_epoch_end(inner, epoch, logs=None):
                self.seen[epoch + 1] = state_of(inner.model)
                scramble(inner.model)

        self.seen: dict[int, list[np.ndarray]] = {}
        self.callback = Callback()


def test_in_fit_each_checkpoint_holds_the_state_at_its_epochs_end(keras, digits, tmp_path, monkeypatch):
    X, y = digits
    model = make_model(keras)
    scrambler = Scrambler(keras)
    gate = Gate(monkeypatch)
    gate.opened.set()
    model.fit(X, y, epochs=3, callbacks=[Checkpointer(tmp_path, background=True), scrambler.callback], **FIT)
    assert gate.threads == ["nnsave-checkpoint"] * 3
    for epoch in (1, 2, 3):
        assert_same_state(state_of(nnsave.load(tmp_path / f"ckpt-{epoch:05d}.keras")), scrambler.seen[epoch])
    assert [row.epoch for row in nnsave.list_checkpoints(tmp_path)] == [1, 2, 3]


def test_at_most_one_save_is_in_flight(keras, digits, tmp_path, monkeypatch):
    real_save = nnsave.api.save
    lock = threading.Lock()
    running, most, finished = [0], [0], []

    def slow_save(obj, path, **options):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)  # longer than an epoch of this model: the next save must wait
        try:
            return real_save(obj, path, **options)
        finally:
            with lock:
                running[0] -= 1
                finished.append(Path(path).name)

    monkeypatch.setattr(nnsave.api, "save", slow_save)
    X, y = digits
    model = make_model(keras)
    model.fit(X, y, epochs=4, callbacks=[Checkpointer(tmp_path, background=True)], **FIT)
    # fit returned only after the last save finished.
    assert most[0] == 1 and finished == [f"ckpt-{epoch:05d}.keras" for epoch in (1, 2, 3, 4)]
    assert nnsave.latest_checkpoint(tmp_path) == tmp_path / "ckpt-00004.keras"


def failing_save_on(monkeypatch, failing_epoch):
    real_save = nnsave.api.save

    def save(obj, path, *, metadata, **options):
        if metadata["epoch"] == failing_epoch:
            raise OSError(28, "No space left on device", str(path))
        return real_save(obj, path, metadata=metadata, **options)

    monkeypatch.setattr(nnsave.api, "save", save)


def test_a_background_failure_is_raised_at_the_next_epoch_and_the_previous_checkpoint_is_intact(
    keras, digits, tmp_path, monkeypatch
):
    failing_save_on(monkeypatch, failing_epoch=2)
    started = []

    class Count(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append(epoch + 1)

    X, y = digits
    with pytest.raises(OSError, match="No space left on device"):
        make_model(keras).fit(X, y, epochs=10, callbacks=[Count(), Checkpointer(tmp_path, background=True)], **FIT)
    # The save of epoch 2 failed in the background; training stopped in epoch 3.
    assert started == [1, 2, 3]
    assert nnsave.latest_checkpoint(tmp_path) == tmp_path / "ckpt-00001.keras"
    _, initial_epoch = nnsave.resume(tmp_path)
    assert initial_epoch == 1


def test_a_failure_of_the_last_save_is_raised_when_fit_ends(keras, digits, tmp_path, monkeypatch):
    failing_save_on(monkeypatch, failing_epoch=2)
    X, y = digits
    with pytest.raises(OSError, match="No space left on device"):
        make_model(keras).fit(X, y, epochs=2, callbacks=[Checkpointer(tmp_path, background=True)], **FIT)
    assert nnsave.latest_checkpoint(tmp_path) == tmp_path / "ckpt-00001.keras"


def test_warnings_of_a_background_save_are_given_on_the_training_thread(keras, tmp_path):
    model = make_model(keras)
    first = Checkpointer(tmp_path)
    first.set_model(model)
    for epoch in (1, 2, 3):
        first.save(epoch, {"loss": 1.0})
    # A new run that saves epoch 1 again abandons epochs 2 and 3: the warning
    # is collected in the background and given here, at wait().
    restarted = Checkpointer(tmp_path, background=True)
    restarted.set_model(model)
    restarted.on_train_begin()
    restarted.save(1, {"loss": 0.5})
    with pytest.warns(CheckpointFallbackWarning, match="over a run that went further") as caught:
        restarted.wait()
    assert Path(caught[0].filename).name == Path(__file__).name


@pytest.mark.parametrize("suffix", [".keras", ".safetensors"])
def test_a_snapshot_saved_later_is_the_model_at_the_snapshot(keras, trained_sequential, tmp_path, suffix):
    target = tmp_path / f"model{suffix}"
    before = state_of(trained_sequential)
    snapshot = handler_for_path(target).snapshot(trained_sequential, target)
    scramble(trained_sequential)
    nnsave.save(snapshot, target)
    snapshot.release()
    assert_same_state(state_of(nnsave.load(target)), before)
    info = nnsave.inspect(target)
    assert info.class_path == "keras.src.models.sequential.Sequential"


# --------------------------------------------------------------------------- kills


TRAINER = textwrap.dedent(
    """
    import os, sys, threading, time
    import nnsave
    nnsave.seed_everything(0)
    import keras
    from sklearn.datasets import load_digits
    sys.path.insert(0, {tests!r})
    from test_checkpoint_background import make_model, FIT

    real_fsync = os.fsync
    def slow_fsync(descriptor):
        # Make each background save last long enough to be killed in the middle.
        if threading.current_thread().name == "nnsave-checkpoint":
            time.sleep(0.05)
        return real_fsync(descriptor)
    os.fsync = slow_fsync

    real_save = nnsave.api.save
    def announced_save(obj, path, **options):
        print("saving", options["metadata"]["epoch"], flush=True)
        return real_save(obj, path, **options)
    nnsave.api.save = announced_save

    X, y = load_digits(return_X_y=True)
    X, y = (X[:300] / 16.0).astype("float32"), y[:300]
    make_model(keras).fit(X, y, epochs=1000, callbacks=[nnsave.Checkpointer({folder!r}, background=True)], **FIT)
    """
)


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15])
def test_a_kill_during_a_background_save_leaves_the_previous_checkpoint_and_resume_is_exact(
    keras, digits, tmp_path, delay
):
    folder = tmp_path / "run"
    script = TRAINER.format(tests=str(Path(__file__).parent), folder=str(folder))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.split() == ["saving", "3"]:
                break
        time.sleep(delay)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(60)
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = nnsave.list_checkpoints(folder)
        for row in rows:
            nnsave.verify(row.path)
        resumed, initial_epoch = nnsave.resume(folder)
    # Killed between the checkpoint's rename and the index's, the directory
    # reads as torn, as after a synchronous save: the newer, complete file is used.
    assert all(w.category is CheckpointFallbackWarning and "is torn" in str(w.message) for w in caught)
    # Killed in the save of epoch 3 (or, on a slow machine, just after it, in the save of epoch 4).
    assert initial_epoch in (2, 3, 4) and sorted(row.epoch for row in rows) == list(range(1, initial_epoch + 1))
    X, y = digits
    straight = make_model(keras)
    straight.fit(X, y, epochs=initial_epoch, **FIT)
    assert_same_state(state_of(resumed), state_of(straight))
    # And training on from the checkpoint gives what training straight through gives.
    resumed.fit(X, y, initial_epoch=initial_epoch, epochs=initial_epoch + 2, **FIT)
    straight.fit(X, y, epochs=2, **FIT)
    assert_same_state(state_of(resumed), state_of(straight))


def test_a_snapshot_copies_arrays_their_owner_keeps_and_takes_new_ones_as_they_are():
    from nnsave.formats._keras_state import _StateRecorder

    recorder = _StateRecorder()
    group = recorder.make("layer", metadata={"name": "layer"})
    kept = np.zeros(4)
    made = []

    def new_array():
        array = np.ones(4)
        made.append(id(array))
        return array

    group["kept"] = kept  # the owner changes it in place at the next step
    group["view"] = kept[:2]  # a view: its memory is the kept array's
    group["new"] = new_array()  # like an optimizer's variable.numpy(): nobody else has it
    kept[:] = 5
    recorded = dict(recorder.recorded[0].values)
    assert recorded["kept"].tolist() == [0, 0, 0, 0] and recorded["view"].tolist() == [0, 0]
    assert id(recorded["new"]) == made[0] and recorded["new"].tolist() == [1, 1, 1, 1]
