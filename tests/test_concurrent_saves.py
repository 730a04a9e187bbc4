"""Several processes save to one path, with no lock of their own, while a reader loads it.

Issue 11, attack 5: before the redesign, writers that raced on one path
deleted each other's staging files, so a save could publish its payload and
then fail to publish its manifest, leaving a pair that neither ``verify``
nor ``load`` accepts. Here ``WRITERS`` processes each save ``SAVES`` versions of
a small dict to the same ``.joblib`` path as fast as they can, and this
process loads the path in a loop meanwhile. The contract:

* every save returns (none raises);
* every load returns one whole version: a dict whose array holds, in every
  element, the writer and sequence number the dict names; no warning either;
* afterwards the pair verifies, holds some writer's last version, and no
  staging file is left.

Sizes: ``NNSAVE_CONCURRENT_WRITERS`` (default 3) and ``NNSAVE_CONCURRENT_SAVES``
(default 300 per writer); every writer stops at ``DEADLINE_SECONDS`` in any case.
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
from _safety import assert_no_failures, size_from_environment

import nnsave

WRITERS = size_from_environment("NNSAVE_CONCURRENT_WRITERS", 3)
SAVES = size_from_environment("NNSAVE_CONCURRENT_SAVES", 300)
DEADLINE_SECONDS = 60

WRITER = textwrap.dedent(
    r'''
    import json, sys, time, traceback
    from pathlib import Path

    import numpy as np
    import nnsave

    target, writer, saves, go, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), float(sys.argv[5])
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    stop = time.monotonic() + seconds
    done, failures = 0, []
    for sequence in range(saves):
        if time.monotonic() > stop:
            break
        try:
            nnsave.save({"writer": writer, "sequence": sequence, "stamp": np.full(512, writer * 1_000_000 + sequence)}, target)
            done += 1
        except Exception:
            failures.append(traceback.format_exc()[-1200:])
    print(json.dumps({"writer": writer, "saves": done, "failures": failures}), flush=True)
    '''
)


def whole(version) -> bool:
    """True if ``version`` is one complete save: its array holds exactly the stamp its fields name."""
    expected = version["writer"] * 1_000_000 + version["sequence"]
    return version["stamp"].shape == (512,) and bool(np.all(version["stamp"] == expected))


def read_once(target: Path) -> tuple[str | None, dict | None]:
    """One load: (the broken promise, if any; the version read)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            version = nnsave.load(target)
        except Exception as error:
            return f"{type(error).__name__}: {error}", None
    if caught:
        return f"{caught[0].category.__name__}: {caught[0].message}", version
    if not whole(version):
        return f"a mixture: writer {version['writer']}, sequence {version['sequence']}, stamp {version['stamp'][:3]}", version
    return None, version


def test_writers_without_a_lock_of_their_own_lose_nothing(tmp_path):
    target = nnsave.save({"writer": -1, "sequence": 0, "stamp": np.full(512, -1_000_000)}, tmp_path / "shared.joblib")
    go = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(target), str(writer), str(SAVES), str(go), str(DEADLINE_SECONDS)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for writer in range(WRITERS)
    ]
    failures: list[str] = []
    loads = 0
    try:
        for process in writers:
            assert process.stdout.readline().strip() == "ready", process.stderr.read()[-2000:]
        go.touch()
        started = time.monotonic()
        while any(process.poll() is None for process in writers):
            assert time.monotonic() - started < DEADLINE_SECONDS + 60, "the writers did not finish"
            problem, _ = read_once(target)
            loads += 1
            if problem is not None:
                failures.append(f"load {loads}: {problem}")
        elapsed = time.monotonic() - started
        reports = [json.loads(process.stdout.read().strip().splitlines()[-1]) for process in writers]
    finally:
        for process in writers:
            if process.poll() is None:
                process.kill()
            process.wait()
            process.stdout.close()
            process.stderr.close()
    for report in reports:
        failures += [f"writer {report['writer']}: {failure}" for failure in report["failures"]]
    saves = sum(report["saves"] for report in reports)
    problem, last = read_once(target)
    if problem is not None:
        failures.append(f"after the run: {problem}")
    else:
        nnsave.verify(target)
        finished = {report["writer"]: report["saves"] for report in reports}
        if last["sequence"] != finished.get(last["writer"], 0) - 1:
            failures.append(f"after the run the pair holds writer {last['writer']}'s save {last['sequence']}, not its last")
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name not in {target.name, target.name + nnsave.MANIFEST_SUFFIX, "go", ".nnsave.lock"})
    if leftovers:
        failures.append(f"left behind: {leftovers}")
    print(f"{saves} saves by {WRITERS} writers and {loads} loads in {elapsed:.1f} s")
    assert_no_failures(failures, f"of {saves} saves and {loads} loads")
    assert saves == WRITERS * SAVES, f"only {saves} of {WRITERS * SAVES} saves were made in {DEADLINE_SECONDS} s"
    assert loads >= 10, f"the reader loaded only {loads} times: the test proved little"
