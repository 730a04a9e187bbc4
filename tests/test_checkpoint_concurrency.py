"""Two processes checkpoint into one directory while a reader asks for the latest and resumes.

Readers take no lock. What they must never see, however the writers'
steps interleave with theirs:

* a crash: any exception from ``latest_checkpoint`` or ``resume``
  (a checkpoint deleted by retention under the reader is surveyed again,
  never reported);
* nothing, once a checkpoint has been found;
* a missing newest checkpoint: ``latest_checkpoint`` returning an older
  checkpoint while a newer one stood whole and unchanged on disk for the
  whole call;
* a mixture: ``resume`` returning weights of another epoch than its own.

The writers (those of ``test_safety_concurrency.py``) stamp every weight of
the first layer with ``epoch + writer / 10``. Both write the same checkpoint
names, so they also exercise retention deleting what the other wrote, and
the restart rule (a save of epoch ``e`` abandons the checkpoints of later
epochs, which the index marks before they are deleted).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings

# The writers, and how a model's weights tell which writer saved which epoch,
# are those of the safety suite's concurrency test.
from test_safety_concurrency import WRITER, stamp_of

import nnsave

SECONDS = float(os.environ.get("NNSAVE_CHECKPOINT_CONCURRENCY_SECONDS", "15"))
WRITERS = 2
#: One resume per this many reads: a resume loads a whole model.
RESUME_EVERY = 4

def epoch_of(path):
    return int(path.name[len("ckpt-") : -len(".keras")])


class Pairs(dict):
    """Checkpoint name to the identities of its payload and manifest, and what the index then called abandoned."""

    abandoned: set[str] = set()


def whole_pairs(directory):
    """For each checkpoint that has both files: the identities of its payload and manifest."""
    pairs = Pairs()
    pairs.abandoned = abandoned(directory)
    for payload in directory.glob("ckpt-*.keras"):
        try:
            files = [os.stat(payload), os.stat(f"{payload}.nnsave.json")]
        except FileNotFoundError:
            continue
        pairs[payload.name] = tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in files)
    return pairs


def abandoned(directory):
    """What the index marks as left by a run that a writer restarted before (readers rightly pass it over)."""
    try:
        return set(json.loads((directory / "checkpoint.json").read_bytes()).get("abandoned", []))
    except (OSError, ValueError):
        return set()


def missed_newer(directory, latest, before, after):
    """A checkpoint newer than ``latest`` that was whole, unchanged and not abandoned for the whole call, if any."""
    floor = epoch_of(latest) if latest is not None else -1
    for name in sorted(set(before) & set(after), reverse=True):
        path = directory / name
        if epoch_of(path) <= floor or before[name] != after[name] or name in before.abandoned | after.abandoned:
            continue
        try:
            nnsave.verify(path)
        except Exception:
            continue  # a pair torn all along (a half-published overwrite) is rightly skipped
        if whole_pairs(directory).get(name) == before[name]:
            return name
    return None


def read_once(directory, iteration, tallies):
    """One reader iteration; returns the broken promises it saw."""
    problems = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            before = whole_pairs(directory)
            latest = nnsave.latest_checkpoint(directory)
            after = whole_pairs(directory)
            if latest is None:
                if tallies["found"]:
                    problems.append("latest_checkpoint found nothing, after checkpoints had been found")
                return problems
            tallies["found"] += 1
            missed = missed_newer(directory, latest, before, after)
            if missed:
                problems.append(f"latest_checkpoint gave {latest.name} while {missed} stood whole throughout")
            if iteration % RESUME_EVERY == 0:
                model, epoch = nnsave.resume(directory)
                tallies["resumes"] += 1
                if int(stamp_of(model)) != epoch:
                    problems.append(f"resume gave epoch {epoch} with weights stamped {stamp_of(model)}")
        except Exception as error:
            problems.append(f"{type(error).__name__}: {error}")
    for warning in caught:
        if issubclass(warning.category, nnsave.CheckpointFallbackWarning):
            tallies["fallback warnings"] += 1
        else:
            problems.append(f"unexpected {warning.category.__name__}: {warning.message}")
    return problems


def test_two_writers_and_a_lock_free_reader(tmp_path, keras):
    directory = tmp_path / "run"
    directory.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    environment.pop("NNSAVE_KEY", None)
    log = open(tmp_path / "writers.stderr", "wb")
    process = subprocess.Popen(
        [sys.executable, str(script), str(directory), str(WRITERS), str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=log, env=environment,
    )
    failures, tallies, iterations = [], {"found": 0, "resumes": 0, "fallback warnings": 0}, 0
    try:
        started = time.monotonic()
        while not all((tmp_path / f"ready-{w}").exists() for w in range(WRITERS)):
            assert process.poll() is None, (tmp_path / "writers.stderr").read_text()[-2000:]
            assert time.monotonic() - started < 180, "the writers never got ready"
            time.sleep(0.05)
        (tmp_path / "go").write_text(str(time.time() + SECONDS))
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            iterations += 1
            failures += [f"read {iterations}: {p}" for p in read_once(directory, iterations, tallies)]
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode == 0, (tmp_path / "writers.stderr").read_text()[-2000:]
    reports = [json.loads((tmp_path / f"report-{w}.json").read_text()) for w in range(WRITERS)]
    failures += [f"writer {w}: {error}" for w, report in enumerate(reports) for error in report["errors"]]
    saves = [report["saves"] for report in reports]
    print(f"{iterations} reads, {tallies}, saves per writer {saves}")
    assert not failures, f"{len(failures)} broken promises:\n" + "\n".join(failures[:10])
    assert min(saves) >= 5 and tallies["found"] >= 10 and tallies["resumes"] >= 3, (saves, tallies)
