"""Concurrency: two processes checkpoint into one directory while a reader keeps loading.

Two writer processes each run a :class:`nnsave.Checkpointer` on the same
directory, saving epoch after epoch with their own weights (writer ``w``
stamps epoch ``e`` as ``e + w / 10`` in every weight of the first layer), so
each checkpoint name is written by both, overwriting each other, and each
writer's retention deletes files the other wrote. Meanwhile this process
reads in a loop, for ``NNSAVE_CONCURRENCY_SECONDS`` (default 6):

* ``checkpoint.json`` must always parse as an nnsave index;
* ``nnsave.latest_checkpoint`` must return a checkpoint, and
  ``nnsave.load`` must give a whole model whose weights are those of the
  epoch its name says (from either writer, never a mixture) and which
  matches its manifest.

Allowed: a :class:`nnsave.CheckpointFallbackWarning` (the documented
reaction to a directory in flux, such as an index naming an older
checkpoint than the newest file), and a ``FileNotFoundError`` naming the
checkpoint when a writer's retention deleted it between
``latest_checkpoint`` and ``load`` (the file is gone, not broken; the next
iteration asks again). Everything else is a failure, as is any exception in
a writer. At the end every checkpoint verifies and ``nnsave.resume`` works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from _safety import assert_no_failures, ledger_fixture, size_from_environment

import nnsave
from nnsave import storage

SECONDS = size_from_environment("NNSAVE_CONCURRENCY_SECONDS", 6)
WRITERS = 2

ledger = ledger_fixture("concurrency")

WRITER = textwrap.dedent(
    r'''
    import json, os, sys, time, traceback, warnings
    from pathlib import Path

    import numpy as np
    import nnsave

    nnsave.seed_everything(0)
    import keras

    # Keras is imported once, then the writers are forked: two processes, one import.
    directory, writers, folder = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    children = []
    for writer in range(writers):
        pid = os.fork()
        if pid == 0:
            break
        children.append(pid)
    else:
        statuses = [os.waitpid(pid, 0)[1] for pid in children]
        sys.exit(0 if all(status == 0 for status in statuses) else 1)
    ready, go, report_path = folder / f"ready-{writer}", folder / "go", folder / f"report-{writer}.json"
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(32), keras.layers.Dense(4)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    checkpointer = nnsave.Checkpointer(directory, max_to_keep=3, monitor="loss")
    checkpointer.set_model(model)
    checkpointer.on_train_begin()
    ready.write_text("ready")
    while not go.exists():
        time.sleep(0.01)
    deadline = float(go.read_text())
    report = {"saves": 0, "errors": [], "warnings": {}}
    epoch = 0
    while time.time() < deadline:
        epoch += 1
        stamp = epoch + writer / 10
        kernel, bias = model.layers[0].get_weights()
        model.layers[0].set_weights([np.full_like(kernel, stamp), np.full_like(bias, stamp)])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                checkpointer.save(epoch, {"loss": 1.0 / epoch})
            report["saves"] += 1
            for warning in caught:
                name = warning.category.__name__
                report["warnings"][name] = report["warnings"].get(name, 0) + 1
        except Exception as error:
            report["errors"].append(f"epoch {epoch}: {type(error).__name__}: {error}\n{traceback.format_exc()[-1500:]}")
    report_path.write_text(json.dumps(report))
    os._exit(0)
    '''
)


def stamp_of(model) -> float:
    kernel, bias = model.layers[0].get_weights()
    value = float(bias[0])
    if not (np.all(kernel == value) and np.all(bias == value)):
        raise ValueError("the first layer's weights are not one stamp: a mixture of two saves")
    return value


def read_once(directory: Path, tallies: dict[str, int]) -> list[str]:
    """One reader iteration; returns the broken promises it saw."""
    problems = []
    index = directory / "checkpoint.json"
    try:
        text = index.read_bytes()
    except FileNotFoundError:
        text = None
    if text is not None:
        tallies["index reads"] += 1
        try:
            document = json.loads(text)
            if document.get("format") != "nnsave-checkpoint-index":
                problems.append("checkpoint.json is not an nnsave index")
        except ValueError as error:
            problems.append(f"checkpoint.json does not parse: {error}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            latest = nnsave.latest_checkpoint(directory)
            if latest is None:
                if tallies["loads"] or tallies["deleted before load"] or tallies["nothing found later"]:
                    said = "; ".join(str(w.message) for w in caught) or "no warning"
                    problems.append(f"latest_checkpoint found nothing, after checkpoints had been found ({said})")
                    tallies["nothing found later"] += 1
                else:
                    tallies["nothing yet"] += 1
                return problems
            model = nnsave.load(latest)
        except FileNotFoundError as error:
            if "ckpt-" not in str(error):
                problems.append(f"FileNotFoundError not about a checkpoint: {error}")
            tallies["deleted before load"] += 1
            return problems
        except Exception as error:
            return [*problems, f"{type(error).__name__}: {error}"]
    for warning in caught:
        if issubclass(warning.category, nnsave.CheckpointFallbackWarning):
            tallies["fallback warnings"] += 1
        else:
            problems.append(f"unexpected {warning.category.__name__}: {warning.message}")
    try:
        stamp = stamp_of(model)
    except ValueError as error:
        return [*problems, f"{latest.name}: {error}"]
    epoch = int(latest.name[len("ckpt-") : -len(".keras")])
    if int(stamp) != epoch or round((stamp - epoch) * 10) not in range(WRITERS):
        problems.append(f"{latest.name} holds the weights stamped {stamp}")
    tallies["loads"] += 1
    return problems


def test_two_writers_and_a_reader(tmp_path, ledger, keras):
    directory = tmp_path / "run"
    directory.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment.pop("NNSAVE_KEY", None)
    stderr = tmp_path / "writers.stderr"
    log = open(stderr, "wb")
    process = subprocess.Popen(
        [sys.executable, str(script), str(directory), str(WRITERS), str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=log, env=environment,
    )
    readies = [tmp_path / f"ready-{writer}" for writer in range(WRITERS)]
    try:
        start = time.monotonic()
        while not all(ready.exists() for ready in readies):
            assert process.poll() is None, f"the writers died while starting: {stderr.read_text()[-2000:]}"
            assert time.monotonic() - start < 180, "the writers never got ready"
            time.sleep(0.05)
        go.write_text(str(time.time() + SECONDS))
        deadline = time.monotonic() + SECONDS
        failures: list[str] = []
        tallies = {
            key: 0
            for key in ("index reads", "loads", "nothing yet", "nothing found later", "deleted before load", "fallback warnings")
        }
        iterations = 0
        while time.monotonic() < deadline:
            iterations += 1
            failures += [f"read {iterations}: {problem}" for problem in read_once(directory, tallies)]
        examined = iterations - tallies["nothing yet"]
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode == 0, f"the writers failed: {stderr.read_text()[-2000:]}"
    reports = [json.loads((tmp_path / f"report-{writer}.json").read_text()) for writer in range(WRITERS)]
    for writer, report in enumerate(reports):
        failures += [f"writer {writer}: {error}" for error in report["errors"]]
        ledger.note(f"writer {writer} saves", report["saves"])
        if report["saves"] < 3:
            failures.append(f"writer {writer} saved only {report['saves']} checkpoints: the test proved little")
    # What is left is whole, and a resume works.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", nnsave.CheckpointFallbackWarning)
        for path in sorted(directory.glob("ckpt-*.keras")):
            try:
                nnsave.verify(path)
            except Exception as error:
                failures.append(f"after the run: {type(error).__name__}: {error}")
        leftovers = [p.name for p in directory.iterdir() if storage.is_temporary(p)]
        if leftovers:
            failures.append(f"after the run, staging files are left: {leftovers}")
        model, epoch = nnsave.resume(directory)
        if int(stamp_of(model)) != epoch:
            failures.append(f"resume gave epoch {epoch} with weights stamped {stamp_of(model)}")
    for key, value in tallies.items():
        ledger.note(f"reader: {key}", value)
    if tallies["loads"] < 10:
        failures.append(f"the reader loaded only {tallies['loads']} checkpoints: the test proved little")
    ledger.record("reader iterations while two processes checkpoint", [], trials=examined)
    ledger.record("checkpoints saved by the writers", [], trials=sum(r["saves"] for r in reports))
    ledger.record("promises broken", failures, trials=0)
    assert_no_failures(failures, "concurrent reads and writes")
