"""Kill -9 during save: after every kill the final name holds a whole artifact that verifies.

A helper process (the *zygote*, written to ``tmp_path``) imports nnsave and
Keras once, then forks a *saver* on demand. A saver saves version after
version of one artifact (a ``.joblib`` dict of arrays, a ``.keras`` model, or
a :class:`nnsave.Checkpointer` checkpoint with its index and retention) and
logs ``start v`` before and ``done v`` after each save. The test kills the
saver with SIGKILL and then checks the directory, as a fresh process would
find it:

* the artifact verifies (``nnsave.verify``) and loads (``nnsave.load``), and
  its content is version ``v`` or ``v - 1`` if the kill hit the save of ``v``,
  and exactly ``v`` if ``done v`` was logged (the previous artifact or the
  complete new one, never a mixture);
* for checkpoints, every ``ckpt-*.keras`` verifies, ``checkpoint.json``
  parses, and :func:`nnsave.latest_checkpoint` names epoch ``v`` or ``v - 1``.

Two kinds of kill:

* *random*: the test sleeps a seeded random delay while the saver loops, and
  meanwhile reads the artifact itself (no read may fail or return a mixture),
  then kills;
* *stepped*: the saver kills itself just before its k-th file-system call
  (open for writing, fsync, flock, rename, unlink), for every k of one save,
  so each boundary between two steps is hit exactly once, including the one
  between renaming the payload and renaming its manifest.

Sizes: ``NNSAVE_KILL_TRIALS`` random kills in all (default 15, a third per
format), plus the stepped ones; ``NNSAVE_KILL_SEED`` changes the delays.
"""

from __future__ import annotations

import json
import os
import queue
import random
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
from _safety import assert_no_failures, ledger_fixture, size_from_environment

import nnsave
from nnsave import storage

RANDOM_KILLS = size_from_environment("NNSAVE_KILL_TRIALS", 15)
SEED = size_from_environment("NNSAVE_KILL_SEED", 20260)
FORMATS = ("joblib", "keras", "checkpoint")
# Kills land uniformly in [0, this many saves' time) after the saver's first save starts.
DELAY_IN_SAVES = 3.0

ledger = ledger_fixture("kill")

ZYGOTE = textwrap.dedent(
    r'''
    """Fork savers on request. Protocol on stdin/stdout, one line each, replies start with '@@'."""
    import builtins, fcntl, io, json, os, signal, sys, time

    import numpy as np
    import nnsave

    nnsave.seed_everything(0)
    import keras  # imported once, here; no TensorFlow op runs before a fork

    ARRAY_LENGTH = 200_000


    def joblib_object(version):
        return {"version": version, "payload": np.full(ARRAY_LENGTH, version, dtype=np.int64)}


    def keras_model():
        model = keras.Sequential(
            [keras.Input((64,)), keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)]
        )
        model.compile(optimizer="adam", loss="mse")
        model.optimizer.build(model.trainable_variables)  # saved with its state, as after training
        return model


    def stamp(model, version):
        # The version is written into every weight of the first layer, so a
        # loaded model tells exactly which save it came from.
        kernel, bias = model.layers[0].get_weights()
        model.layers[0].set_weights([np.full_like(kernel, version), np.full_like(bias, version)])


    def arm(kill_step, counter):
        """Count file-system calls that change files; SIGKILL this process before call ``kill_step``."""

        def wrap(owner, name, changes_files):
            original = getattr(owner, name)

            def wrapper(*args, **kwargs):
                if changes_files(args, kwargs):
                    counter[0] += 1
                    if counter[0] == kill_step:
                        os.kill(os.getpid(), signal.SIGKILL)
                return original(*args, **kwargs)

            setattr(owner, name, wrapper)

        def writing_mode(args, kwargs):
            mode = args[1] if len(args) > 1 else kwargs.get("mode", "r")
            return isinstance(mode, str) and any(flag in mode for flag in "wxa+")

        def writing_flags(args, kwargs):
            flags = args[1] if len(args) > 1 else kwargs.get("flags", 0)
            return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))

        def always(args, kwargs):
            return True

        wrap(builtins, "open", writing_mode)
        io.open = builtins.open
        wrap(os, "open", writing_flags)
        for name in ("replace", "rename", "unlink", "remove", "rmdir", "fsync", "link", "truncate", "ftruncate"):
            wrap(os, name, always)
        wrap(fcntl, "flock", always)


    def saver(mode, directory, log_path, start, kill_step, single):
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

        def note(text):
            os.write(log, (text + "\n").encode())

        directory = os.path.abspath(directory)
        if mode == "joblib":
            target = os.path.join(directory, "arrays.joblib")

            def save(version):
                nnsave.save(joblib_object(version), target, metadata={"version": version})

        elif mode == "keras":
            target = os.path.join(directory, "model.keras")
            model = keras_model()

            def save(version):
                stamp(model, version)
                nnsave.save(model, target, metadata={"version": version})

        else:
            model = keras_model()
            checkpointer = nnsave.Checkpointer(directory, max_to_keep=3, monitor="loss")
            checkpointer.set_model(model)
            checkpointer.on_train_begin()

            def save(version):
                stamp(model, version)
                checkpointer.save(version, {"loss": 1.0 / version})

        import warnings

        warnings.simplefilter("ignore")  # a stale-index fallback warning is expected after kills
        counter = [0]
        arm(kill_step, counter)
        note("ready")
        version = start
        while True:
            note(f"start {version}")
            began = time.perf_counter()
            save(version)
            note(f"done {version} {time.perf_counter() - began:.4f}")
            if single:
                note(f"steps {counter[0]}")
                os._exit(0)
            version += 1


    def main():
        print("@@ ready", flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "spawn":
                pid = os.fork()
                if pid == 0:
                    try:
                        saver(**command["args"])
                    except BaseException as error:  # reported through the exit status and stderr
                        import traceback

                        traceback.print_exc()
                        os._exit(3)
                    os._exit(0)
                print(f"@@ {pid}", flush=True)
            elif command["op"] == "reap":
                _, status = os.waitpid(command["pid"], 0)
                print(f"@@ {json.dumps({'signal': os.WTERMSIG(status) if os.WIFSIGNALED(status) else None, 'exit': os.WEXITSTATUS(status) if os.WIFEXITED(status) else None})}", flush=True)
            elif command["op"] == "quit":
                break


    main()
    '''
)


class Zygote:
    """The helper process, driven over a pipe."""

    def __init__(self, folder: Path) -> None:
        script = folder / "zygote.py"
        script.write_text(ZYGOTE)
        self.stderr_path = folder / "zygote.stderr"
        self._stderr = open(self.stderr_path, "wb")
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=environment,
        )
        self._replies: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()
        assert self._reply(timeout=180) == "ready"

    def _read_replies(self) -> None:
        for line in self.process.stdout:
            if line.startswith("@@ "):
                self._replies.put(line[3:].strip())
        self._replies.put(None)

    def _reply(self, timeout: float) -> str:
        try:
            reply = self._replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the zygote did not answer within {timeout} s") from None
        if reply is None:
            raise RuntimeError(f"the zygote died; its stderr:\n{self.stderr_path.read_text()[-3000:]}")
        return reply

    def _send(self, op: str, **fields) -> None:
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()

    def spawn(self, **args) -> int:
        self._send("spawn", args=args)
        return int(self._reply(timeout=60))

    def reap(self, pid: int) -> dict:
        """Wait for a saver to end; one that hangs for a minute is killed and reported."""
        self._send("reap", pid=pid)
        try:
            return json.loads(self._reply(timeout=60))
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)
            self._reply(timeout=60)
            raise AssertionError(f"saver {pid} hung for a minute (a deadlock?) and was killed") from None

    def close(self) -> None:
        try:
            self._send_quit()
        finally:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._reader.join(timeout=10)
            self.process.stdout.close()
            self._stderr.close()

    def _send_quit(self) -> None:
        self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
        self.process.stdin.close()


@pytest.fixture(scope="module")
def zygote(tmp_path_factory):
    helper = Zygote(tmp_path_factory.mktemp("zygote"))
    yield helper
    helper.close()


def read_log(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def save_bounds(lines: list[str]) -> tuple[int | None, int | None]:
    """The last version whose save started, and the last one whose save was logged done."""
    started = [int(line.split()[1]) for line in lines if line.startswith("start ")]
    done = [int(line.split()[1]) for line in lines if line.startswith("done ")]
    return (started[-1] if started else None), (done[-1] if done else None)


def save_seconds(lines: list[str]) -> list[float]:
    return [float(line.split()[2]) for line in lines if line.startswith("done ")]


def wait_for(lines_of, predicate, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = lines_of()
        if predicate(lines):
            return lines
        time.sleep(0.002)
    raise TimeoutError("the saver never got going")


class ReadFailed(Exception):
    """A reader's load failed; the message carries the warnings it saw first."""


class Artifact:
    """One format under test: where it lives, and how to tell which version a file holds."""

    def __init__(self, mode: str, directory: Path) -> None:
        self.mode = mode
        self.directory = directory
        directory.mkdir()
        self.target = {"joblib": directory / "arrays.joblib", "keras": directory / "model.keras"}.get(mode)

    def version_of_loaded(self, obj) -> int:
        """The version stamped into a loaded object; ValueError if its parts disagree."""
        if self.mode == "joblib":
            payload = obj["payload"]
            if payload.shape != (200_000,) or not np.all(payload == obj["version"]):
                raise ValueError(f"the arrays do not all hold version {obj['version']}")
            return int(obj["version"])
        kernel, bias = obj.layers[0].get_weights()
        version = float(bias[0])
        if not (np.all(kernel == version) and np.all(bias == version)) or version != int(version):
            raise ValueError("the first layer's weights are not all one version")
        return int(version)

    def read(self) -> tuple[int, list[warnings.WarningMessage]]:
        """Load the current artifact as a reader would; return its version and any warnings."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if self.mode == "checkpoint":
                    model, epoch = nnsave.resume(self.directory)
                    version = self.version_of_loaded(model)
                    if version != epoch:
                        raise ValueError(f"resume() said epoch {epoch}, but the weights are version {version}")
                else:
                    version = self.version_of_loaded(nnsave.load(self.target))
            except Exception as error:
                said = " | ".join(str(w.message) for w in caught)
                raise ReadFailed(f"{type(error).__name__}: {error} [warnings: {said or 'none'}]") from error
        return version, list(caught)

    def check_after_kill(self, allowed: set[int]) -> tuple[int | None, list[str]]:
        """Check the directory a killed saver left; return the version found and the problems."""
        problems = []
        version = None
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if self.mode == "checkpoint":
                    version, found = self._check_checkpoints(problems)
                else:
                    info = nnsave.verify(self.target)
                    version = self.version_of_loaded(nnsave.load(self.target))
                    if info.metadata.get("version") != version:
                        problems.append(f"the manifest says version {info.metadata.get('version')}, the payload {version}")
            unexpected = [w for w in caught if not issubclass(w.category, nnsave.CheckpointFallbackWarning)]
            problems += [f"unexpected warning {w.category.__name__}: {w.message}" for w in unexpected]
        except Exception as error:  # any exception here is a broken promise, reported in full
            problems.append(f"{type(error).__name__}: {error}")
        if version is not None and version not in allowed:
            problems.append(f"holds version {version}, expected one of {sorted(allowed)}")
        return version, problems

    def _check_checkpoints(self, problems: list[str]) -> tuple[int | None, bool]:
        index = self.directory / "checkpoint.json"
        if index.exists():
            document = json.loads(index.read_text())
            if not isinstance(document, dict) or "checkpoints" not in document:
                problems.append("checkpoint.json parses but is not an index")
        for path in sorted(self.directory.glob("ckpt-*.keras")):
            if not storage.is_temporary(path):
                nnsave.verify(path)  # every checkpoint left under its final name is whole
        latest = nnsave.latest_checkpoint(self.directory)
        if latest is None:
            problems.append("latest_checkpoint found nothing")
            return None, False
        epoch = int(latest.name[len("ckpt-") : -len(".keras")])
        version = self.version_of_loaded(nnsave.load(latest))
        if version != epoch:
            problems.append(f"{latest.name} holds the weights of epoch {version}")
        return version, True

    def temporaries(self) -> list[str]:
        return sorted(p.name for p in self.directory.iterdir() if storage.is_temporary(p))


def run_format(mode, zygote, folder, rng, random_kills, ledger):
    """Stepped kills over one save, then random kills; returns (failures, facts)."""
    artifact = Artifact(mode, folder / mode)
    failures: list[str] = []
    facts = {"interrupted": 0, "random_kills_inside_a_save": 0, "left_temporaries": 0, "reads_during_saves": 0}
    runs = [0]

    def spawn(start, kill_step=0, single=False):
        runs[0] += 1
        log = folder / f"{mode}-{runs[0]}.log"
        pid = zygote.spawn(
            mode=mode, directory=str(artifact.directory), log_path=str(log),
            start=start, kill_step=kill_step, single=single,
        )
        return pid, log

    def finish(pid, log, killed_by_us):
        status = zygote.reap(pid)
        lines = read_log(log)
        if status["exit"] not in (0, None) or (status["signal"] not in (None, signal.SIGKILL)):
            stderr = zygote.stderr_path.read_text()[-2000:]
            raise AssertionError(f"the {mode} saver failed on its own: {status}\n{stderr}")
        if killed_by_us and status["signal"] != signal.SIGKILL:
            raise AssertionError(f"the {mode} saver was not killed: {status}")
        return status, lines

    # Version 1, 2, 3 saved whole: the starting point, and the number of
    # file-system steps one save takes once retention is in its steady state.
    current = 0
    for _ in range(4 if mode == "checkpoint" else 2):
        pid, log = spawn(current + 1, single=True)
        _, lines = finish(pid, log, killed_by_us=False)
        current += 1
        steps = int(lines[-1].split()[1])
        seconds = save_seconds(lines)[-1]

    def check(lines, label):
        nonlocal current
        started, done = save_bounds(lines)
        if started is None:
            allowed = {current}
        elif done == started:
            allowed = {started}
        else:
            allowed = {started - 1, started}
            facts["interrupted"] += 1
        if artifact.temporaries():
            facts["left_temporaries"] += 1
        version, problems = artifact.check_after_kill(allowed)
        failures.extend(f"{mode} {label}: {problem}" for problem in problems)
        if version is not None:
            current = version
        else:
            current = max(allowed)

    # Stepped kills: before each file-system call of one save in turn.
    for step in range(1, steps + 1):
        pid, log = spawn(current + 1, kill_step=step, single=True)
        status, lines = finish(pid, log, killed_by_us=False)
        check(lines, f"kill before step {step} of {steps}")
    ledger.record(f"{mode}: killed before each step of a save", [], trials=steps)

    # Random kills while the saver loops and this process reads.
    for trial in range(random_kills):
        delay = rng.uniform(0, DELAY_IN_SAVES * seconds)
        pid, log = spawn(current + 1)
        wait_for(lambda: read_log(log), lambda lines: any(line.startswith("start") for line in lines), 60)
        deadline = time.monotonic() + delay
        while True:
            try:
                _, caught = artifact.read()
                facts["reads_during_saves"] += 1
                bad = [w for w in caught if not issubclass(w.category, nnsave.CheckpointFallbackWarning)]
                failures.extend(f"{mode} reader: unexpected {w.category.__name__}: {w.message}" for w in bad)
            except Exception as error:
                failures.append(f"{mode} reader during saves: {type(error).__name__}: {error}")
            if time.monotonic() >= deadline:
                break
        os.kill(pid, signal.SIGKILL)
        _, lines = finish(pid, log, killed_by_us=True)
        started, done = save_bounds(lines)
        facts["random_kills_inside_a_save"] += started is not None and started != done
        check(lines, f"random kill {trial + 1} after {delay:.3f} s")
    ledger.record(f"{mode}: killed at a random moment", [], trials=random_kills)

    # The next save clears what the killed ones left behind.
    pid, log = spawn(current + 1, single=True)
    _, lines = finish(pid, log, killed_by_us=False)
    check(lines, "final save")
    leftovers = artifact.temporaries()
    if leftovers:
        failures.append(f"{mode}: the next save left the temporaries of killed saves: {leftovers}")
    facts["steps_per_save"] = steps
    return failures, facts


def first_save_sweep(mode, zygote, folder, steps):
    """Kill the very first save of a file before each of its steps: nothing, or the whole file."""
    failures = []
    for step in range(1, steps + 1):
        artifact = Artifact(mode, folder / f"first-{mode}-{step}")
        log = folder / f"first-{mode}-{step}.log"
        pid = zygote.spawn(
            mode=mode, directory=str(artifact.directory), log_path=str(log), start=1, kill_step=step, single=True
        )
        status = zygote.reap(pid)
        if status["signal"] not in (None, signal.SIGKILL) or status["exit"] not in (None, 0):
            failures.append(f"{mode} first save, step {step}: the saver failed on its own ({status})")
            continue
        started, done = save_bounds(read_log(log))
        if artifact.target.exists():
            _, problems = artifact.check_after_kill({1})
        elif done == 1:
            problems = ["the save was logged done, but the file is missing"]
        else:
            problems = []  # the previous state: no file at all
        failures += [f"{mode} first save, kill before step {step}: {problem}" for problem in problems]
    return failures


@pytest.mark.parametrize("mode", FORMATS)
def test_kill_during_save(mode, zygote, tmp_path, ledger, keras):
    rng = random.Random(f"{SEED}-{mode}")
    random_kills = -(-RANDOM_KILLS // len(FORMATS))
    failures, facts = run_format(mode, zygote, tmp_path, rng, random_kills, ledger)
    if mode != "checkpoint":  # every checkpoint is a first save under its name already
        first = first_save_sweep(mode, zygote, tmp_path, facts["steps_per_save"])
        ledger.record(f"{mode}: first save killed before each step", [], trials=facts["steps_per_save"])
        failures += first
    ledger.record(f"{mode}: promises broken", failures, trials=0)
    for key, value in facts.items():
        ledger.note(f"{mode}: {key.replace('_', ' ')}", value)
    assert facts["random_kills_inside_a_save"] > 0, f"no random kill landed inside a {mode} save: the test proved nothing"
    assert_no_failures(failures, f"kills of a {mode} saver")
