"""Corruption fuzzing: every changed byte that matters is caught, with a clear error.

Three artifacts are saved once: a ``.keras`` model, a ``.joblib`` dict holding
a fitted estimator and an array, and a ``.skops`` estimator; each both
signed with the user's own key (as every save is by default) and signed
with a key named by ``key=``. Each case takes one of them, changes the
payload or its manifest by one of

* *flip*: XOR 1 to 16 bytes at random offsets with random non-zero values;
* *truncate*: cut the file at a random length (0 included);
* *extend*: append 1 to 64 bytes (random, zeros, or a copy of its own bytes),

writes the result under the artifact's name and calls ``nnsave.load`` (with
``key=`` when the artifact was signed with a named key), ``nnsave.verify`` and
``nnsave.inspect``. The contract, case by case:

A changed **payload** (its manifest intact) is always refused: ``load`` and
``verify`` raise :class:`~nnsave.IntegrityError`,
:class:`~nnsave.UntrustedFileError` or :class:`~nnsave.FormatError`, and
``inspect`` raises one of them or reports an integrity other than ``INTACT``.

A changed **manifest** is judged by what it now says, because only part of
a manifest protects anything:

* if it no longer parses as a JSON object, or its ``digests``, ``size`` or
  ``format`` changed, every call refuses it as above;
* if it still parses and only the unsigned-for fields changed (``metadata``,
  ``versions``, ``class``, ``created_utc``...), the payload's digest still
  matches, so ``verify`` passes and the bytes loaded are exactly those that
  were saved (the test checks that the loaded object equals the original);
  but the signature no longer holds, so such a file loads only if loading it
  runs no code (``.keras`` in safe mode, ``.skops`` of trusted types). A
  pickle whose signature broke has nobody to vouch for it and is refused;
* under a named key, a manifest may load only if the document is unchanged
  as JSON (a flip inside the indentation, say); any changed value must be
  refused with :class:`~nnsave.UntrustedFileError` or another of the three
  errors.

Every refusal must name the file, and no call may raise any other exception
type. A success on changed bytes that the contract does not allow is a
failure, as is a wrong object returned.

A second test drops the manifest, so nothing but the format itself can
notice damage, and demands only that loading either refuses with one of the
three errors or succeeds with an :class:`~nnsave.UnverifiedFileWarning`:
never silently, never with another exception (joblib#1319 is a truncated
pickle failing with a bare ``EOFError``).

Sizes: ``NNSAVE_FUZZ_CASES`` cases with a manifest (default 540) and a fifth
as many without; ``NNSAVE_FUZZ_SEED`` changes them.
"""

from __future__ import annotations

import itertools
import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _safety import assert_no_failures, ledger_fixture, size_from_environment

import nnsave
from nnsave import FormatError, IntegrityError, UntrustedFileError, UnverifiedFileWarning

CASES = size_from_environment("NNSAVE_FUZZ_CASES", 540)
SEED = size_from_environment("NNSAVE_FUZZ_SEED", 6)
KEY = "fuzzing key"
KINDS = ("keras", "joblib", "skops")
TARGETS = ("payload", "manifest")
MUTATIONS = ("flip", "truncate", "extend")
REFUSALS = (IntegrityError, UntrustedFileError, FormatError)
#: The manifest fields that bind it to the payload's bytes.
PROTECTED_FIELDS = ("digests", "size", "format")
#: The kinds whose loading runs code: only a signature that holds lets them load.
RUNS_CODE = ("joblib",)

ledger = ledger_fixture("fuzz")


@dataclass(frozen=True)
class Pristine:
    kind: str
    named_key: bool
    payload: bytes
    manifest: bytes
    original: Any

    @property
    def name(self) -> str:
        return f"fuzzed.{self.kind}"


def _iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Each artifact's bytes, signed with the user's key and with a named key, and the object it holds."""
    nnsave.seed_everything(0)
    import keras
    from sklearn.linear_model import LogisticRegression

    X, y = _iris()
    estimator = LogisticRegression(max_iter=500).fit(X, y)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    objects = {
        "keras": model,
        "joblib": {"estimator": estimator, "weights": np.linspace(0, 1, 50)},
        "skops": estimator,
    }
    folder = tmp_path_factory.mktemp("pristine")
    found = {}
    for kind, named_key in itertools.product(KINDS, (False, True)):
        path = folder / f"{'named' if named_key else 'user'}.{kind}"
        nnsave.save(objects[kind], path, key=KEY if named_key else None, metadata={"run": 7, "note": "fuzz"})
        manifest = path.with_name(path.name + nnsave.MANIFEST_SUFFIX).read_bytes()
        found[kind, named_key] = Pristine(kind, named_key, path.read_bytes(), manifest, objects[kind])
    return found


def same_as_original(kind: str, original: Any, loaded: Any) -> bool:
    X, _ = _iris()
    if kind == "keras":
        return all(np.array_equal(a, b) for a, b in zip(original.get_weights(), loaded.get_weights(), strict=True))
    if kind == "joblib":
        return np.array_equal(original["weights"], loaded["weights"]) and np.array_equal(
            original["estimator"].predict_proba(X), loaded["estimator"].predict_proba(X)
        )
    return np.array_equal(original.predict_proba(X), loaded.predict_proba(X))


def mutate(data: bytes, how: str, rng: random.Random) -> bytes:
    """``data`` changed by ``how``; never equal to ``data``."""
    if how == "flip":
        while True:
            changed = bytearray(data)
            for _ in range(rng.choice((1, 1, 1, 2, 3, 16))):
                changed[rng.randrange(len(changed))] ^= rng.randint(1, 255)
            if bytes(changed) != data:
                return bytes(changed)
    if how == "truncate":
        style = rng.random()
        if style < 0.5:
            return data[: rng.randrange(len(data))]
        if style < 0.75:
            return data[: max(0, len(data) - rng.randint(1, 64))]
        return data[: rng.randint(0, min(64, len(data) - 1))]
    style = rng.random()
    count = rng.randint(1, 64)
    if style < 0.5:
        return data + rng.randbytes(count)
    if style < 0.75:
        return data + bytes(count)
    start = rng.randrange(len(data))
    return data + data[start : start + count]


def parsed(document: bytes) -> dict | None:
    try:
        value = json.loads(document.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def intact(original_manifest: bytes, manifest: bytes) -> bool:
    """Whether this (possibly changed) manifest still describes the saved payload."""
    before, after = parsed(original_manifest), parsed(manifest)
    if after is None:
        return False
    return all(after.get(name) == before.get(name) and type(after.get(name)) is type(before.get(name)) for name in PROTECTED_FIELDS)


def may_load(original_manifest: bytes, manifest: bytes, named_key: bool, runs_code: bool) -> bool:
    """Whether the contract lets a load succeed with this (possibly changed) manifest."""
    if named_key or runs_code:  # only a signature that still holds may vouch
        return parsed(manifest) is not None and parsed(manifest) == parsed(original_manifest)
    return intact(original_manifest, manifest)


def attempt(call):
    """Run ``call``; return ("ok", result) / ("refused", error) / ("other", error), and the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return "ok", call(), caught
        except REFUSALS as error:
            return "refused", error, caught
        except Exception as error:  # the contract forbids it; reported below
            return "other", error, caught


def judge(verb: str, outcome: tuple, path: Path, success_allowed: bool, check_success) -> list[str]:
    kind, value, _ = outcome
    if kind == "other":
        return [f"{verb} raised {type(value).__name__}, not an nnsave error: {value}"]
    if kind == "refused":
        if path.name not in str(value):
            return [f"{verb} refused it, but the message does not name {path.name}: {value}"]
        return []
    if not success_allowed:
        return [f"{verb} succeeded on changed bytes"]
    return check_success(value)


def run_case(case: int, rng: random.Random, item: Pristine, target: str, how: str, folder: Path) -> list[str]:
    payload, manifest = item.payload, item.manifest
    if target == "payload":
        payload = mutate(payload, how, rng)
    else:
        manifest = mutate(manifest, how, rng)
    path = folder / item.name
    path.write_bytes(payload)
    path.with_name(path.name + nnsave.MANIFEST_SUFFIX).write_bytes(manifest)
    success_allowed = target == "manifest" and may_load(item.manifest, manifest, item.named_key, item.kind in RUNS_CODE)
    still_intact = target == "manifest" and intact(item.manifest, manifest)

    def loaded_is_original(obj):
        return [] if same_as_original(item.kind, item.original, obj) else ["load returned a different object"]

    def verified_is_original(info):
        if info.digests != parsed(item.manifest)["digests"] or info.size != len(item.payload):
            return ["verify passed a payload that is not the saved one"]
        return []

    def inspected(info):
        if info.integrity is nnsave.Integrity.INTACT and not still_intact:
            return ["inspect reports an intact file for changed protected bytes"]
        return []

    label = f"case {case} ({item.kind}, {'a named key' if item.named_key else 'the user key'}, {how} the {target})"
    problems = judge(
        "load", attempt(lambda: nnsave.load(path, key=KEY if item.named_key else None)), path, success_allowed, loaded_is_original
    )
    problems += judge("verify", attempt(lambda: nnsave.verify(path)), path, still_intact, verified_is_original)
    problems += judge("inspect", attempt(lambda: nnsave.inspect(path)), path, True, inspected)
    return [f"{label}: {problem}" for problem in problems]


@pytest.fixture
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv("NNSAVE_KEY", raising=False)


def test_fuzzed_artifacts_and_manifests(pristine, tmp_path, ledger, no_key_in_environment):
    rng = random.Random(SEED)
    combinations = list(itertools.product(KINDS, (False, True), TARGETS, MUTATIONS))
    failures = []
    counts: dict[str, int] = {}
    for case in range(CASES):
        kind, named_key, target, how = combinations[case % len(combinations)]
        failures += run_case(case, rng, pristine[kind, named_key], target, how, tmp_path)
        label = f"{how} the {target} ({kind})"
        counts[label] = counts.get(label, 0) + 1
    for label, count in counts.items():
        ledger.record(label, [], trials=count)
    ledger.record("promises broken", failures, trials=0)
    assert_no_failures(failures, "fuzzed files")


def test_damaged_files_without_a_manifest(pristine, tmp_path, ledger, no_key_in_environment):
    """No manifest: the format alone must turn damage into one of nnsave's errors, or warn."""
    rng = random.Random(SEED + 1)
    plans = [
        ("keras", "flip"), ("keras", "truncate"), ("keras", "extend"),
        ("skops", "flip"), ("skops", "truncate"), ("skops", "extend"),
        # A flipped pickle can ask for any allocation or call; only cuts are fair to a trusted pickle.
        ("joblib", "truncate"),
    ]
    failures = []
    cases = max(len(plans), CASES // 5)
    for case in range(cases):
        kind, how = plans[case % len(plans)]
        item = pristine[kind, False]
        path = tmp_path / item.name
        path.write_bytes(mutate(item.payload, how, rng))
        trusted = kind == "joblib"  # the caller vouches, so the pickle itself is parsed
        outcome = attempt(lambda: nnsave.load(path, trusted=trusted))
        status, value, caught = outcome

        def warned(_):
            if any(issubclass(w.category, UnverifiedFileWarning) for w in caught):
                return []
            return ["load succeeded without an UnverifiedFileWarning"]

        problems = judge("load", outcome, path, True, warned)
        failures += [f"case {case} ({kind}, no manifest, {how}): {problem}" for problem in problems]
        ledger.record(f"{how} a {kind} file without a manifest", [], trials=1)
    ledger.record("promises broken without a manifest", failures, trials=0)
    assert_no_failures(failures, "damaged files without a manifest")
