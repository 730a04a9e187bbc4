"""Disk full: a save that runs out of space fails clearly and leaves the previous file intact.

The disk fills up in two simulated ways, swept over every point of one save:

* *write*: writes into nnsave's staging files raise ``OSError(ENOSPC)``
  once a byte budget is spent (0 bytes, mid-payload, just short of the
  payload, inside the manifest, inside a checkpoint's index). nnsave writes
  a staged file through an ``io.FileIO`` on the descriptor that created it
  (``storage.Transaction.stream``); a library given a staging path writes
  it with ``open``. Both are metered;
* *fsync*: the k-th ``os.fsync`` of the save raises ``OSError(ENOSPC)``, as
  on file systems that allocate late, for every k.

After each failure: the error is an ``OSError`` with errno ``ENOSPC`` whose
message names the file being saved; every file that was there before has
exactly its previous bytes and still verifies; no staging file is left
behind; and once space is back the next save works.

One point is different: the fsync of the *directory*, which makes the
renames durable, comes after the renames. If it fails, the new files are
already in place and nothing can put the old ones back. There the contract
is that the new artifact is whole and verifies, and that the error does not
claim the previous file was left unchanged. (For checkpoints the same holds
when the checkpoint is published and only its index update fails:
``latest_checkpoint`` then finds the new, whole checkpoint.)

The same is then tried on a real, full file system: a 3 MB tmpfs mounted in
a private mount namespace (``unshare``; root, or an unprivileged user
namespace). Where neither is allowed, a file-size limit
(``RLIMIT_FSIZE``) makes the kernel refuse the write instead (``EFBIG``), so
a real failed write is always tested; the test does not skip.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from _safety import assert_no_failures, ledger_fixture

import nnsave
from nnsave import storage

ledger = ledger_fixture("diskfull")


class DiskFull:
    """Patch the process so that the disk fills up at a chosen point of a save."""

    def __init__(self, monkeypatch) -> None:
        self.monkeypatch = monkeypatch
        self.budget: int | None = None  # bytes staged files may take before ENOSPC
        self.fail_fsync_at: int | None = None  # the k-th fsync raises ENOSPC
        self.written = 0
        self.fsyncs = 0
        self.full = False
        original_open, original_fsync = builtins.open, os.fsync
        meter = self

        class Metered:
            def __init__(self, raw) -> None:
                self._raw = raw

            def write(self, data) -> int:
                meter.spend(data)
                return self._raw.write(data)

            def __enter__(self):
                return self

            def __exit__(self, *exc_info) -> None:
                self._raw.close()

            def __iter__(self):
                return iter(self._raw)

            def __getattr__(self, name):
                return getattr(self._raw, name)

        class MeteredFileIO(io.FileIO):
            def write(self, data) -> int:
                meter.spend(data)
                return super().write(data)

        def metered_open(file, mode="r", *args, **kwargs):
            handle = original_open(file, mode, *args, **kwargs)
            staged = isinstance(file, (str, os.PathLike)) and storage.is_temporary(Path(file))
            if staged and any(flag in mode for flag in "wxa+"):
                return Metered(handle)
            return handle

        def metered_fsync(descriptor) -> None:
            meter.fsyncs += 1
            if meter.fail_fsync_at == meter.fsyncs:
                meter.full = True
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            original_fsync(descriptor)

        monkeypatch.setattr(builtins, "open", metered_open)
        monkeypatch.setattr(io, "open", metered_open)
        monkeypatch.setattr(io, "FileIO", MeteredFileIO)
        monkeypatch.setattr(os, "fsync", metered_fsync)

    def spend(self, data) -> None:
        """Count a write of ``data``; raise ENOSPC instead if it does not fit the budget."""
        size = memoryview(data).nbytes
        if self.budget is not None and self.written + size > self.budget:
            self.full = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.written += size

    def arm(self, *, budget: int | None = None, fail_fsync_at: int | None = None) -> None:
        self.budget, self.fail_fsync_at = budget, fail_fsync_at
        self.written = self.fsyncs = 0
        self.full = False


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def temporaries(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir() if storage.is_temporary(path))


class Subject:
    """One format: how to save version ``v``, and what its directory must look like."""

    def __init__(self, mode: str, directory: Path, keras_module) -> None:
        self.mode, self.directory = mode, directory
        directory.mkdir()
        if mode == "joblib":
            self.target = directory / "arrays.joblib"
        elif mode == "keras" or mode == "checkpoint":
            self.model = keras_module.Sequential(
                [keras_module.Input((32,)), keras_module.layers.Dense(64), keras_module.layers.Dense(4)]
            )
            self.model.compile(optimizer="adam", loss="mse")
            self.model.optimizer.build(self.model.trainable_variables)
            self.target = directory / "model.keras"
        if mode == "checkpoint":
            self.checkpointer = nnsave.Checkpointer(directory, max_to_keep=2, monitor="loss")
            self.checkpointer.set_model(self.model)
            self.checkpointer.on_train_begin()
        self.version = 0

    def save(self, version: int) -> None:
        if self.mode == "joblib":
            nnsave.save({"version": version, "data": np.full(50_000, version)}, self.target, metadata={"version": version})
            return
        kernel, bias = self.model.layers[0].get_weights()
        self.model.layers[0].set_weights([np.full_like(kernel, version), np.full_like(bias, version)])
        if self.mode == "keras":
            nnsave.save(self.model, self.target, metadata={"version": version})
        else:
            self.checkpointer.save(version, {"loss": 1.0 / version})

    def names_for(self, version: int) -> list[str]:
        """The file names a failing save of ``version`` may name in its error."""
        if self.mode == "checkpoint":
            return [f"ckpt-{version:05d}.keras", "checkpoint.json"]
        return [self.target.name]

    def version_in(self, obj) -> int:
        if self.mode == "joblib":
            assert np.all(obj["data"] == obj["version"])
            return int(obj["version"])
        kernel, bias = obj.layers[0].get_weights()
        assert np.all(kernel == bias[0]) and np.all(bias == bias[0])
        return int(bias[0])

    def published(self, attempted: int) -> bool:
        """Whether the failed save's new artifact is in place anyway (a failure after the renames)."""
        if self.mode == "checkpoint":
            return (self.directory / f"ckpt-{attempted:05d}.keras").exists()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return nnsave.inspect(self.target).metadata.get("version") == attempted

    def check_after_failure(self, before: dict[str, bytes], attempted: int, published: bool) -> list[str]:
        """The previous files intact, or the new ones whole if they were published; returns problems."""
        problems = []
        after = snapshot(self.directory)
        leftovers = temporaries(self.directory)
        if leftovers:
            problems.append(f"staging files left behind: {leftovers}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", nnsave.CheckpointFallbackWarning)
            if self.mode != "checkpoint":
                changed = [name for name in before if after.get(name) != before[name]]
                if changed and not published:
                    problems.append(f"the previous files changed: {changed}")
                nnsave.verify(self.target)
                found = self.version_in(nnsave.load(self.target))
                if found != (attempted if published else attempted - 1):
                    problems.append(f"holds version {found} after a failed save of {attempted}")
                return problems
            for name, data in before.items():
                if name.endswith(".keras") and after.get(name) != data:
                    problems.append(f"the previous checkpoint {name} changed")
            if not published and after.get("checkpoint.json") != before.get("checkpoint.json"):
                problems.append("the index changed although the checkpoint was not published")
            json.loads(after["checkpoint.json"])
            for name in after:
                if name.startswith("ckpt-") and name.endswith(".keras"):
                    nnsave.verify(self.directory / name)
            latest = nnsave.latest_checkpoint(self.directory)
            found = self.version_in(nnsave.load(latest))
            if found not in ({attempted - 1, attempted} if published else {attempted - 1}):
                problems.append(f"latest_checkpoint gives version {found} after a failed save of {attempted}")
        return problems


def sweep(subject: Subject, disk: DiskFull) -> tuple[int, list[str]]:
    """Fill the disk at every point of one save; return (trials, failures)."""
    # Two good saves first; measure the second (retention is steady by then).
    for version in (1, 2):
        disk.arm()
        subject.save(version)
    staged_bytes, fsyncs = disk.written, disk.fsyncs
    version = 3
    budgets = sorted({0, 1, staged_bytes // 3, staged_bytes // 2, staged_bytes - 200, staged_bytes - 1})
    points = [("write", dict(budget=b)) for b in budgets] + [
        ("fsync", dict(fail_fsync_at=k)) for k in range(1, fsyncs + 1)
    ]
    failures, trials = [], 0
    for kind, arming in points:
        trials += 1
        label = f"{subject.mode}, disk full at {kind} {list(arming.values())[0]} (of {staged_bytes} bytes, {fsyncs} fsyncs)"
        before = snapshot(subject.directory)
        disk.arm(**arming)
        try:
            subject.save(version)
        except OSError as error:
            problems = []
            if error.errno != errno.ENOSPC:
                problems.append(f"errno {error.errno}, not ENOSPC: {error}")
            if not any(name in str(error) for name in subject.names_for(version)):
                problems.append(f"the message does not name the file: {error}")
            published = subject.published(version)
            after = snapshot(subject.directory)
            replaced = [name for name in subject.names_for(version) if name in str(error) and after.get(name) != before.get(name)]
            if replaced and any(claim in str(error) for claim in ("unchanged", "Nothing was replaced")):
                problems.append(f"{replaced} were replaced, but the message says nothing was: {error}")
        except Exception as error:
            problems = [f"raised {type(error).__name__}, not OSError(ENOSPC): {error}"]
            published = subject.published(version)
        else:
            published = True
            problems = [] if not disk.full else ["the save reported success although the disk was full"]
            if not disk.full:
                problems.append("the fault was never hit (the sweep is out of date)")
        disk.arm()
        try:
            problems += subject.check_after_failure(before, version, published)
        except Exception as error:
            problems.append(f"checking the directory raised {type(error).__name__}: {error}")
        failures += [f"{label}: {problem}" for problem in problems]
        # Space is back: the next save works and the version moves on.
        disk.arm()
        subject.save(version)
        version += 1
    return trials, failures


@pytest.mark.parametrize("mode", ["joblib", "keras", "checkpoint"])
def test_disk_full_during_save(mode, tmp_path, monkeypatch, ledger, keras):
    disk = DiskFull(monkeypatch)
    trials, failures = sweep(Subject(mode, tmp_path / mode, keras), disk)
    ledger.record(f"{mode}: simulated ENOSPC at each write and fsync", failures, trials=trials)
    assert_no_failures(failures, f"full-disk {mode} saves")


# --------------------------------------------------------------------------- a real full disk

CHILD = textwrap.dedent(
    r'''
    import errno, json, os, resource, signal, sys
    from pathlib import Path

    import numpy as np
    import nnsave
    from nnsave import storage

    directory, limit = Path(sys.argv[1]), sys.argv[2]
    if limit != "tmpfs":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    target = directory / "arrays.joblib"
    nnsave.save({"version": 1, "data": np.ones(10_000)}, target)
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    report = {"limit": limit}
    try:
        nnsave.save({"version": 2, "data": np.ones(1_000_000)}, target)  # 8 MB
        report["error"] = None
    except OSError as error:
        report["error"] = {"errno": error.errno, "message": str(error)}
    after = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    report["unchanged"] = sorted(name for name in before if after.get(name) == before[name]) == sorted(before)
    report["temporaries"] = sorted(p.name for p in directory.iterdir() if storage.is_temporary(p))
    report["verifies"] = nnsave.verify(target).integrity is nnsave.Integrity.INTACT
    report["version"] = int(nnsave.load(target)["version"])
    nnsave.save({"version": 3, "data": np.ones(10_000)}, target)  # room for a small one
    report["then_saves"] = int(nnsave.load(target)["version"]) == 3
    print("@@" + json.dumps(report))
    '''
)


def run_child(script: Path, directory: Path, limit: str, wrapper: list[str]) -> dict | None:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if limit == "tmpfs":
        command = [
            *wrapper, "sh", "-c",
            f'mount -t tmpfs -o size=3m tmpfs "$1" || exit 97; exec "$2" "$3" "$1" tmpfs',
            "sh", str(directory), sys.executable, str(script),
        ]
    else:
        command = [sys.executable, str(script), str(directory), limit]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [line for line in result.stdout.splitlines() if line.startswith("@@")]
    if result.returncode != 0 or not lines:
        if limit != "tmpfs":
            raise AssertionError(f"the child failed: {result.stderr[-2000:]}")
        return None
    return json.loads(lines[-1][2:])


def test_real_full_file_system(tmp_path, ledger):
    script = tmp_path / "fill.py"
    script.write_text(CHILD)
    directory = tmp_path / "small"
    directory.mkdir()
    report = None
    ways = [["unshare", "--mount", "--propagation", "private"],
            ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]]
    for wrapper in ways:
        report = run_child(script, directory, "tmpfs", wrapper)
        if report is not None:
            break
    if report is None:  # no tmpfs allowed here: let the kernel refuse past a file-size limit instead
        report = run_child(script, directory, str(1 << 20), [])
    real_tmpfs = report["limit"] == "tmpfs"
    expected_errno = errno.ENOSPC if real_tmpfs else errno.EFBIG
    problems = []
    if report["error"] is None:
        problems.append("the save that cannot fit succeeded")
    else:
        if report["error"]["errno"] != expected_errno:
            problems.append(f"errno {report['error']['errno']}, expected {expected_errno}: {report['error']['message']}")
        if real_tmpfs and "arrays.joblib" not in report["error"]["message"]:
            problems.append(f"the message does not name the file: {report['error']['message']}")
    for fact, wanted in (("unchanged", True), ("temporaries", []), ("verifies", True), ("version", 1), ("then_saves", True)):
        if report[fact] != wanted:
            problems.append(f"{fact} is {report[fact]!r}, expected {wanted!r}")
    ledger.note("real full disk", "tmpfs (ENOSPC)" if real_tmpfs else "file-size limit (EFBIG)")
    ledger.record("a real full file system", [f"real disk full: {p}" for p in problems], trials=1)
    assert_no_failures(problems, "real full-disk saves")
