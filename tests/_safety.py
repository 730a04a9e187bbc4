"""Shared by the safety and attack tests: sizes, deadlines, and a ledger of trials and failures.

Each safety test file counts what it tried and what broke a promise, and
writes ``_build/safety/<name>.json`` when its last test is done: a record of
the campaign (trials per case, facts such as how many kills hit a save) to
read after a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_DIR = ROOT / "_build" / "safety"

#: The safety test files that keep a ledger, and the title of each.
SUITES = {
    "kill": "Kill -9 during save",
    "fuzz": "Corruption fuzzing",
    "hostile": "Hostile files",
    "diskfull": "Disk full",
    "concurrency": "Concurrent writers and a reader",
}


def size_from_environment(name: str, default: int) -> int:
    """An integer size from the environment variable ``name``, else ``default``."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    number = int(value)
    if number < 1:
        raise ValueError(f"{name} must be a positive whole number, not {value!r}")
    return number


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise TimeoutError in the block after ``seconds``, even inside a blocked open or read.

    A test of something that could hang runs it under a deadline, so that a
    hang fails the test instead of stopping the suite. Main thread only (SIGALRM).
    """

    def expire(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Ledger:
    """Trials and failures of one safety test file; failures are described, not just counted."""

    def __init__(self, name: str) -> None:
        if name not in SUITES:
            raise ValueError(f"unknown safety suite {name!r}")
        self.name = name
        self.trials = 0
        self.failures: list[str] = []
        self.cases: dict[str, int] = {}
        self.facts: dict[str, object] = {}
        self._started = time.perf_counter()

    def record(self, case: str, failures: list[str], trials: int = 1) -> None:
        """Count ``trials`` of kind ``case`` and the promises they broke."""
        self.trials += trials
        if trials:
            self.cases[case] = self.cases.get(case, 0) + trials
        self.failures += failures

    def note(self, fact: str, value: object) -> None:
        """Keep a fact about the run (how many kills hit a save, say) for the summary."""
        self.facts[fact] = value

    def summary(self) -> dict:
        return {
            "name": self.name,
            "title": SUITES[self.name],
            "trials": self.trials,
            "failures": len(self.failures),
            "seconds": round(time.perf_counter() - self._started, 1),
            "cases": dict(sorted(self.cases.items())),
            "facts": dict(sorted(self.facts.items())),
            "first_failures": self.failures[:5],
        }

    def write(self) -> Path:
        SUMMARY_DIR.mkdir(parents=True, exist_ok=True)
        target = SUMMARY_DIR / f"{self.name}.json"
        target.write_text(json.dumps(self.summary(), indent=2) + "\n")
        return target


def ledger_fixture(name: str):
    """A module-scoped fixture that yields a :class:`Ledger` and writes it at the end."""

    @pytest.fixture(scope="module")
    def ledger():
        book = Ledger(name)
        yield book
        book.write()

    return ledger


def assert_no_failures(failures: list[str], what: str) -> None:
    """Fail with the first few broken promises spelled out."""
    shown = "\n  - ".join(failures[:8])
    more = f"\n  ... and {len(failures) - 8} more" if len(failures) > 8 else ""
    assert not failures, f"{len(failures)} {what} broke a promise:\n  - {shown}{more}"
