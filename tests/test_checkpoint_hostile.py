"""Hostile checkpoint directories: damaged JSON, paths that escape, files that block, planted checkpoints.

Each case is checked through every reader: ``latest_checkpoint``,
``resume``, ``list_checkpoints`` and ``nnsave ls``. None of them may crash,
hang or leave the directory; each falls back to the newest checkpoint that
is still usable, and says why with a CheckpointFallbackWarning.
"""

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

from _safety import deadline

import nnsave
from nnsave.checkpoint import INDEX_NAME, TF_STATE_NAME, CheckpointFallbackWarning, Checkpointer
from nnsave.errors import UntrustedFileError
from nnsave.legacy import checkpoint_files

#: A reader that takes longer than this on a few small files is hanging.
DEADLINE_SECONDS = 60


# --------------------------------------------------------------------------- helpers


def read_all_ways(directory, **options):
    """latest_checkpoint, resume and list_checkpoints, each under a deadline; the fallback warnings seen."""
    with warnings.catch_warnings(record=True) as caught, deadline(DEADLINE_SECONDS):
        warnings.simplefilter("always")
        latest = nnsave.latest_checkpoint(directory, **options)
        model, epoch = nnsave.resume(directory, **options)
        rows = nnsave.list_checkpoints(directory, **options)
    messages = [str(w.message) for w in caught if issubclass(w.category, CheckpointFallbackWarning)]
    return latest, (model, epoch), rows, messages


def run_ls(directory, **environment):
    result = subprocess.run(
        [sys.executable, "-m", "nnsave", "ls", str(directory)],
        capture_output=True, text=True, timeout=DEADLINE_SECONDS, env={**os.environ, **environment},
    )
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def stamp_of(model):
    """The epoch a checkpoint of the fixture was stamped with (every first-layer weight holds it)."""
    return float(np.array(model.layers[0].weights[1])[0])


def save_stamped(checkpointer, model, epoch):
    kernel, bias = model.layers[0].get_weights()
    model.layers[0].set_weights([np.full_like(kernel, epoch), np.full_like(bias, epoch)])
    checkpointer.save(epoch, {"loss": 1.0 / epoch})


def write_checkpoints(directory, epochs):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    checkpointer = Checkpointer(directory, monitor="loss", max_to_keep=10)
    checkpointer.set_model(model)
    checkpointer.on_train_begin()
    for epoch in epochs:
        save_stamped(checkpointer, model, epoch)
    return model


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    nnsave.seed_everything(0)
    directory = tmp_path_factory.mktemp("pristine") / "run"
    write_checkpoints(directory, [1, 2, 3])
    return directory


@pytest.fixture
def run(pristine, tmp_path):
    return Path(shutil.copytree(pristine, tmp_path / "run"))


def plant_newer(directory, epoch, edit=None, source="ckpt-00003.keras"):
    """Copy the newest checkpoint as the checkpoint of ``epoch``; ``edit`` rewrites its manifest's JSON text."""
    target = directory / f"ckpt-{epoch:05d}.keras"
    shutil.copyfile(directory / source, target)
    manifest = json.loads((directory / f"{source}.nnsave.json").read_text())
    manifest["metadata"]["epoch"] = epoch
    manifest.pop("signature")
    text = json.dumps(manifest)
    (directory / f"{target.name}.nnsave.json").write_text(edit(text) if edit else text)
    return target


def assert_fell_back_to(directory, epoch, outcome, *expected_notes):
    latest, (model, resumed_epoch), rows, messages = outcome
    assert latest == directory / f"ckpt-{epoch:05d}.keras"
    assert resumed_epoch == epoch and stamp_of(model) == epoch
    assert [row.path for row in rows if row.latest] == [latest]
    for note in expected_notes:
        assert any(note in message for message in messages), (note, messages)


# --------------------------------------------------------------------------- damaged JSON

DAMAGED_INDEXES = {
    "deep nesting": b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "checkpoints": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "a 5000-digit number": b'{"format": "nnsave-checkpoint-index", "schema_version": ' + b"1" * 5000 + b"}",
    "a value beyond floats": (
        b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "mode": "min", "monitor": null, "latest": null,'
        b' "best": null, "checkpoints": [{"file": "ckpt-00003.keras", "epoch": 3, "value": 1' + b"0" * 400 + b"}]}"
    ),
    "a list where a string belongs": (
        b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "mode": "min", "monitor": null,'
        b' "latest": ["ckpt-00003.keras"], "best": null, "checkpoints": []}'
    ),
    "wrong types": b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "checkpoints": {"file": 3}}',
    "a name outside": (
        b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "mode": "min", "monitor": null, "latest": null,'
        b' "best": null, "checkpoints": [{"file": "../outside/ckpt-00009.keras", "epoch": 9, "value": null}]}'
    ),
    "not UTF-8": b"\xff\xfe{}",
}


@pytest.mark.parametrize("data", DAMAGED_INDEXES.values(), ids=DAMAGED_INDEXES.keys())
def test_a_damaged_index_falls_back_to_the_files(run, data):
    (run / INDEX_NAME).write_bytes(data)
    assert_fell_back_to(run, 3, read_all_ways(run), f"{INDEX_NAME} is damaged (")
    result = run_ls(run)
    assert result.returncode == 0 and "is damaged" in result.stderr
    assert result.stdout.splitlines()[-1].startswith("ckpt-00003.keras") and "latest" in result.stdout.splitlines()[-1]


MANIFEST_EDITS = {
    "metadata a list": lambda text: text.replace('"metadata": {', '"metadata": [], "x": {'),
    "an epoch a list": lambda text: text.replace('"epoch": 4', '"epoch": [4]'),
    "an epoch of 400 digits": lambda text: text.replace('"epoch": 4', '"epoch": 4' + "0" * 400),
    "a 5000-digit size": lambda text: text.replace('"size": ', '"size": ' + "9" * 5000 + ", \"_\": "),
    "deep nesting": lambda text: text.replace('"logs": {', '"deep": ' + "[" * 50_000 + "]" * 50_000 + ', "logs": {'),
    "digests a list": lambda text: text.replace('"digests": {', '"digests": [], "_": {'),
    "a format list": lambda text: text.replace('"format": "keras"', '"format": ["keras"]'),
    "a signature string": lambda text: text.replace('"metadata"', '"signature": "abc", "metadata"'),
    "not JSON": lambda text: text[: len(text) // 2],
}


@pytest.mark.parametrize("edit", MANIFEST_EDITS.values(), ids=MANIFEST_EDITS.keys())
def test_odd_json_in_a_newer_manifest_falls_back(run, edit):
    plant_newer(run, 4, edit)
    assert_fell_back_to(run, 3, read_all_ways(run), "skipped ckpt-00004.keras: ")
    rows = {row.path.name: row for row in nnsave.list_checkpoints(run)}
    assert not rows["ckpt-00004.keras"].verified and rows["ckpt-00004.keras"].problem
    result = run_ls(run)
    assert result.returncode == 1 and "ckpt-00004.keras" in result.stdout and "NO:" in result.stdout


def test_odd_but_harmless_logs_in_a_manifest_are_read_as_missing(run):
    plant_newer(run, 4, lambda text: json.dumps({**json.loads(text), "metadata": {"epoch": 4, "monitor": {}, "logs": []}}))
    latest, (model, epoch), rows, messages = read_all_ways(run)
    assert latest == run / "ckpt-00004.keras" and epoch == 4
    assert rows[-1].verified and rows[-1].metric == "loss" and rows[-1].value is None
    assert run_ls(run).returncode == 0


def test_a_directory_that_cannot_be_listed_is_read_through_its_index(run, monkeypatch):
    # Mode 0711: files open by name, but listing is refused (root ignores the mode, so the refusal is simulated).
    real_listdir = os.listdir

    def refuse(path="."):
        if Path(path) == run:
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", refuse)
    latest, (model, epoch), rows, messages = read_all_ways(run)
    assert latest == run / "ckpt-00003.keras" and epoch == 3 and stamp_of(model) == 3 and messages == []
    assert [row.path.name for row in rows] == ["ckpt-00001.keras", "ckpt-00002.keras", "ckpt-00003.keras"]


# --------------------------------------------------------------------------- paths that escape


def fake_tf_checkpoint(prefix):
    """A TensorFlow checkpoint's files, complete as far as a directory listing can tell."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{prefix}.index").write_bytes(b"index")
    Path(f"{prefix}.data-00000-of-00001").write_bytes(b"data")


@pytest.fixture
def tf_run(tmp_path):
    """A directory of TensorFlow checkpoints, with a complete one just outside it."""
    directory = tmp_path / "run"
    for step in (4, 5):
        fake_tf_checkpoint(directory / f"model.ckpt-{step}")
    fake_tf_checkpoint(tmp_path / "outside" / "model.ckpt-7")
    return directory


def tf_state(directory, latest, *history):
    lines = [f'model_checkpoint_path: "{latest}"'] + [f'all_model_checkpoint_paths: "{path}"' for path in history]
    (directory / TF_STATE_NAME).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("escape", ["../outside/model.ckpt-7", "sub/../../outside/model.ckpt-7", "escape/model.ckpt-7"])
def test_a_state_file_cannot_lead_outside(tf_run, escape):
    (tf_run / "escape").symlink_to(tf_run.parent / "outside")
    tf_state(tf_run, escape, "model.ckpt-4", "model.ckpt-5", escape)
    with warnings.catch_warnings(record=True) as caught, deadline(DEADLINE_SECONDS):
        warnings.simplefilter("always")
        latest = nnsave.latest_checkpoint(tf_run)
        rows = nnsave.list_checkpoints(tf_run)
    assert latest == tf_run / "model.ckpt-5"
    assert [row.path.name for row in rows] == ["model.ckpt-4", "model.ckpt-5"]
    assert all(row.path.parent == tf_run for row in rows)
    assert any(f"names {escape!r}, outside the directory; ignored" in str(w.message) for w in caught)
    result = run_ls(tf_run)
    assert "outside" not in result.stdout and "ignored" in result.stderr


def test_absolute_paths_are_looked_up_inside_by_name(tf_run):
    # TF1's Saver writes absolute paths: from another machine, and here one to the folder outside.
    tf_state(tf_run, "/home/someone/old-run/model.ckpt-5", "/home/someone/old-run/model.ckpt-4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert nnsave.latest_checkpoint(tf_run) == tf_run / "model.ckpt-5"
    tf_state(tf_run, str(tf_run.parent / "outside" / "model.ckpt-7"), "model.ckpt-5")
    with pytest.warns(CheckpointFallbackWarning, match="skipped model.ckpt-7: model.ckpt-7.index is missing"):
        assert nnsave.latest_checkpoint(tf_run) == tf_run / "model.ckpt-5"


def test_retention_never_deletes_what_the_index_names_outside(tmp_path):
    outside = tmp_path / "outside" / "ckpt-00001.keras"
    outside.parent.mkdir()
    outside.write_bytes(b"someone else's file")
    directory = tmp_path / "run"
    directory.mkdir()
    (directory / INDEX_NAME).write_bytes(DAMAGED_INDEXES["a name outside"].replace(b"00009", b"00001").replace(b"9,", b"1,"))
    with pytest.warns(CheckpointFallbackWarning, match="is damaged .*not a checkpoint name"):
        assert nnsave.latest_checkpoint(directory) is None
    write_checkpoints(directory, [2, 3])
    assert outside.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in directory.glob("ckpt-*.keras")) == ["ckpt-00002.keras", "ckpt-00003.keras"]


# --------------------------------------------------------------------------- files that block


def fifo(path):
    os.mkfifo(path)


def zeros(path):
    path.symlink_to("/dev/zero")


BLOCKERS = {"a FIFO": fifo, "a link to /dev/zero": zeros}


@pytest.mark.parametrize("block", BLOCKERS.values(), ids=BLOCKERS.keys())
@pytest.mark.parametrize("where", ["index", "tf state", "payload", "manifest"])
def test_nothing_blocks_a_reader(run, block, where):
    if where == "index":
        (run / INDEX_NAME).unlink()
        block(run / INDEX_NAME)
        notes = [f"{INDEX_NAME} is damaged (it is not a regular file)"]
    elif where == "tf state":
        block(run / TF_STATE_NAME)
        notes = [f"TensorFlow's {TF_STATE_NAME} file is damaged (it is not a regular file)"]
    elif where == "payload":
        plant_newer(run, 4).unlink()
        block(run / "ckpt-00004.keras")
        notes = ["skipped ckpt-00004.keras: it is not a regular file"]
    else:
        plant_newer(run, 4)
        (run / "ckpt-00004.keras.nnsave.json").unlink()
        block(run / "ckpt-00004.keras.nnsave.json")
        notes = ["skipped ckpt-00004.keras: it does not match its manifest (damaged manifest)"]
    assert_fell_back_to(run, 3, read_all_ways(run), *notes)
    result = run_ls(run)
    assert result.returncode in (0, 1) and str(run) not in result.stdout  # rows name the file once


@pytest.mark.parametrize("block", BLOCKERS.values(), ids=BLOCKERS.keys())
@pytest.mark.parametrize("part", [".index", ".data-00000-of-00001"])
def test_a_tensorflow_checkpoint_with_a_special_file_is_incomplete(tf_run, block, part):
    blocked = Path(f"{tf_run / 'model.ckpt-5'}{part}")
    blocked.unlink()
    block(blocked)
    tf_state(tf_run, "model.ckpt-5", "model.ckpt-4", "model.ckpt-5")
    assert checkpoint_files(tf_run / "model.ckpt-5")[1] == f"model.ckpt-5{part} is not a regular file"
    with deadline(DEADLINE_SECONDS), pytest.warns(CheckpointFallbackWarning, match=f"skipped model.ckpt-5: model.ckpt-5{part} is not a regular file"):
        assert nnsave.latest_checkpoint(tf_run) == tf_run / "model.ckpt-4"
    assert run_ls(tf_run).returncode == 1


# --------------------------------------------------------------------------- planted checkpoints and keys


@pytest.fixture
def team_run(tmp_path, monkeypatch):
    """Two checkpoints signed with a key the team shares through NNSAVE_KEY."""
    monkeypatch.setenv("NNSAVE_KEY", "team secret")
    directory = tmp_path / "run"
    model = write_checkpoints(directory, [1, 2])
    return directory, model


def test_a_planted_unsigned_checkpoint_does_not_block_resume(team_run):
    directory, model = team_run
    plant_newer(directory, 9, source="ckpt-00002.keras")
    nnsave.save(model, directory / "ckpt-00008.keras", metadata={"epoch": 8}, key="another key")
    outcome = read_all_ways(directory)
    assert_fell_back_to(
        directory, 2, outcome,
        "skipped ckpt-00009.keras: it is unsigned, not signed with the NNSAVE_KEY environment variable",
        "ckpt-00008.keras: it is signed with another key",
    )
    rows = {row.path.name: row for row in outcome[2]}
    assert not rows["ckpt-00009.keras"].verified and rows["ckpt-00009.keras"].signature is nnsave.SignatureStatus.UNSIGNED
    result = run_ls(directory)
    assert result.returncode == 1 and "NO: it is unsigned" in result.stdout


def test_a_key_argument_acts_like_the_environment(team_run, monkeypatch):
    directory, _ = team_run
    plant_newer(directory, 9, source="ckpt-00002.keras")
    monkeypatch.delenv("NNSAVE_KEY")
    with pytest.warns(CheckpointFallbackWarning, match="skipped ckpt-00009.keras: it is unsigned"):
        model, epoch = nnsave.resume(directory, key="team secret")
    assert epoch == 2 and stamp_of(model) == 2
    with pytest.warns(CheckpointFallbackWarning, match="skipped ckpt-00009.keras"):
        assert nnsave.latest_checkpoint(directory, key="team secret") == directory / "ckpt-00002.keras"
    # Without a key, a Keras checkpoint loaded in safe mode needs no voucher:
    # the manifest proves its integrity, and safe mode runs no code from it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointFallbackWarning)
        assert nnsave.resume(directory)[1] == 9


def test_nothing_signed_with_the_key_named_is_an_untrusted_directory(run, monkeypatch):
    monkeypatch.setenv("NNSAVE_KEY", "a key nobody used")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UntrustedFileError, match=r"holds 3 checkpoint\(s\), but none that is intact is signed with the NNSAVE_KEY"):
            nnsave.resume(run)
        assert nnsave.latest_checkpoint(run) is None
    assert all("signed with another key" in str(w.message) for w in caught if issubclass(w.category, CheckpointFallbackWarning))


def test_without_a_key_your_own_checkpoints_are_signed_with_your_key(run):
    rows = nnsave.list_checkpoints(run)
    assert [row.signature for row in rows] == [nnsave.SignatureStatus.VALID] * 3
    assert all(row.verified for row in rows)
