"""Checkpoints on an object store: retention, the index, fallback, and resume after a killed run."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import fsspec
import numpy as np
import pytest

import nnsave
from nnsave import cli, objectstore
from nnsave.checkpoint import INDEX_NAME
from nnsave.errors import CheckpointFallbackWarning
from nnsave.manifest import MANIFEST_SUFFIX


def _names(url: str) -> list[str]:
    fs, key = fsspec.core.url_to_fs(url)
    fs.invalidate_cache()
    return sorted(name.rsplit("/", 1)[-1] for name in fs.ls(key, detail=False))


def _fit(keras, digits, directory, epochs, initial_epoch=0, **options):
    X, y = digits
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=epochs, initial_epoch=initial_epoch, batch_size=64, verbose=0, shuffle=False,
              callbacks=[nnsave.Checkpointer(directory, **options)])
    return model


def test_retention_and_the_index_work_on_s3_as_on_disk(bucket, keras, digits, capsys):
    directory = f"{bucket}/runs/digits"
    _fit(keras, digits, directory, epochs=5, max_to_keep=2)
    kept = ["ckpt-00004.keras", "ckpt-00005.keras"]
    assert _names(directory) == sorted([INDEX_NAME, *kept, *(name + MANIFEST_SUFFIX for name in kept)])
    assert str(nnsave.latest_checkpoint(directory)) == f"{directory}/ckpt-00005.keras"
    rows = nnsave.list_checkpoints(directory)
    assert [(row.epoch, row.verified, row.latest) for row in rows] == [(4, True, False), (5, True, True)]
    assert cli.main(["ls", directory]) == cli.EXIT_OK
    assert "ckpt-00005.keras" in capsys.readouterr().out


def test_resume_falls_back_past_a_damaged_newest_checkpoint(bucket, keras, digits):
    directory = f"{bucket}/runs/damaged"
    _fit(keras, digits, directory, epochs=3, max_to_keep=3)
    fs, key = fsspec.core.url_to_fs(f"{directory}/ckpt-00003.keras")
    data = bytearray(fs.cat_file(key))
    data[len(data) // 2] ^= 0xFF
    fs.pipe_file(key, bytes(data))
    with pytest.warns(CheckpointFallbackWarning, match="ckpt-00003.keras"):
        model, initial_epoch = nnsave.resume(directory)
    assert initial_epoch == 2


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    import nnsave
    nnsave.seed_everything(0)
    import keras
    from sklearn.datasets import load_digits
    from nnsave import objectstore

    commits = []
    commit = objectstore.Upload.commit
    def commit_and_die_on_the_third(self):
        commit(self)
        commits.append(self.target.name)
        if len(commits) == 3:  # epoch 3's checkpoint is visible, its manifest not yet written
            os.kill(os.getpid(), signal.SIGKILL)
    objectstore.Upload.commit = commit_and_die_on_the_third

    X, y = load_digits(return_X_y=True)
    X = (X[:300] / 16.0).astype("float32"); y = y[:300]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=5, batch_size=64, verbose=0, shuffle=False,
              callbacks=[nnsave.Checkpointer(sys.argv[1])])
    """
)


def test_a_checkpointer_on_s3_resumes_after_a_killed_run(bucket, keras, digits, tmp_path, monkeypatch):
    directory = f"{bucket}/runs/killed"
    script = tmp_path / "train.py"
    script.write_text(KILLED_RUN)
    result = subprocess.run([sys.executable, str(script), directory], capture_output=True, text=True, timeout=300)
    assert result.returncode == -9, result.stderr[-2000:]
    staged = [name for name in _names(directory) if objectstore.staged_at(name)]
    assert staged, "the run died between committing epoch 3 and writing its manifest"

    # The committed checkpoint and its staged manifest are a whole pair: resume rolls
    # forward to it, though the index still names epoch 2.
    with pytest.warns(CheckpointFallbackWarning, match="the index names ckpt-00002.keras, but ckpt-00003.keras"):
        model, initial_epoch = nnsave.resume(directory)
    assert initial_epoch == 3

    # Training goes on; the new run's start cleans the dead run's leftovers once stale.
    monkeypatch.setattr(objectstore, "STALE_SECONDS", 0.0)
    X, y = digits
    model.fit(X, y, epochs=5, initial_epoch=initial_epoch, batch_size=64, verbose=0, shuffle=False,
              callbacks=[nnsave.Checkpointer(directory)])
    assert not [name for name in _names(directory) if objectstore.staged_at(name)]
    assert [row.epoch for row in nnsave.list_checkpoints(directory)] == [1, 2, 3, 4, 5]
    assert all(row.verified for row in nnsave.list_checkpoints(directory))
    assert nnsave.resume(directory)[1] == 5


def test_a_memory_directory_checkpoints_and_resumes(keras, digits):
    directory = "memory://nnsave-checkpoints/run"
    try:
        trained = _fit(keras, digits, directory, epochs=2)
        model, initial_epoch = nnsave.resume(directory)
        assert initial_epoch == 2
        for before, after in zip(trained.get_weights(), model.get_weights()):
            assert np.array_equal(before, after)
    finally:
        fsspec.filesystem("memory").rm("/nnsave-checkpoints", recursive=True)
