"""Hostile files: nothing in a file runs, or is extracted, unless the caller vouched for it.

The attacks, each checked with a *canary*: a file that the attack creates
if its code runs. Each attack is first shown to be live (run it the unsafe
way, see the canary appear, delete it), so that a canary that stays absent
means a refusal and not a dud.

* A pickle (``.joblib``) whose ``__reduce__`` writes the canary: never run by
  ``nnsave.load`` without trust, nor by ``inspect``, ``verify`` or the
  command line, with no manifest, with a manifest that does not match, or
  with an attacker's re-hashed manifest checked under a key (unsigned,
  signed with another key, or carrying a signature copied from a genuine
  manifest); ``expected_sha256`` of another file refuses it too. A
  re-hashed manifest is intact, so ``inspect`` and ``verify`` accept it:
  they prove integrity, not origin.
* A ``.keras`` model with a Lambda layer that writes the canary: refused in
  safe mode with a clear error, even after something in the process called
  ``keras.config.enable_unsafe_deserialization()``.
* ``.keras`` and ``.skops`` zips with path-traversal member names or a zip
  bomb: refused by ``load`` (names even with ``trusted=True``), and
  described by ``inspect`` and the command line without error, before any
  hostile member is opened, with or without a re-hashed manifest. (Vouching
  for a file lifts the bomb cap by design: ``tests/test_trust.py``.)
* A ``.skops`` file someone else saved (signed with another key), holding a
  type outside skops's trusted set: ``inspect`` lists it without loading,
  ``load`` refuses it and names it, and loads it only when the caller lists
  it in ``trusted_types``.

Every refusal must be :class:`~nnsave.UntrustedFileError`,
:class:`~nnsave.IntegrityError` or :class:`~nnsave.FormatError` and name the file.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import pickle
import secrets
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _safety import assert_no_failures, ledger_fixture

import nnsave
from nnsave import FormatError, Integrity, IntegrityError, UntrustedFileError, keys
from nnsave.hashing import hash_buffer
from nnsave.manifest import parse_manifest

REFUSALS = (IntegrityError, UntrustedFileError, FormatError)
KEY = "the owner's key"
ATTACKER_KEY = "the attacker's key"
BOMB_BYTES = 16 << 20

ledger = ledger_fixture("hostile")


class Canary:
    """Pickles to a call of ``exec`` that writes ``path``: any stdlib-only unpickler would run it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (builtins.exec, (f"open({self.path!r}, 'w').write('the payload ran')",))


def manifest_of(path: Path) -> Path:
    return path.with_name(path.name + nnsave.MANIFEST_SUFFIX)


def forge_manifest(payload: Path, template: Path, *, signature: str | None = "drop", key: str | None = None) -> None:
    """Write the manifest an attacker would: a genuine one, re-hashed for ``payload``.

    ``signature="drop"`` removes any signature, ``"keep"`` keeps the genuine
    one (a replay); ``key`` re-signs with that key the way nnsave does.
    """
    document = json.loads(manifest_of(template).read_text())
    data = payload.read_bytes()
    document["digests"] = hash_buffer(data, document["digests"]).values
    document["size"] = len(data)
    if signature == "drop":
        document.pop("signature", None)
    if key is not None:
        forged = parse_manifest(json.dumps(document).encode(), source=manifest_of(payload))
        document = json.loads(keys.sign(forged, keys.resolve_key(key, create=False)).to_json())
    manifest_of(payload).write_text(json.dumps(document, indent=2) + "\n")


def refused(call, path: Path, *expected: type) -> list[str]:
    """[] if ``call`` raises one of ``expected`` (default: any refusal) naming ``path``."""
    expected = expected or REFUSALS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except expected as error:
            return [] if path.name in str(error) else [f"the refusal does not name {path.name}: {error}"]
        except Exception as error:
            return [f"raised {type(error).__name__} instead of {'/'.join(e.__name__ for e in expected)}: {error}"]
    return ["was not refused"]


def holds(call, test, what: str) -> list[str]:
    """[] if ``call`` returns a value passing ``test``; a problem otherwise, exceptions included."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = call()
        except Exception as error:
            return [f"raised {type(error).__name__}: {error}"]
    return [] if test(value) else [f"{what}; got {value!r}"[:400]]


def cli(*arguments: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment.pop("NNSAVE_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "nnsave", *arguments], capture_output=True, text=True, timeout=120, env=environment
    )


class Scenarios:
    """Collects named checks; each is a trial, each problem a failure."""

    def __init__(self, canary: Path | None = None) -> None:
        self.canary = canary
        self.failures: list[str] = []
        self.count = 0

    def check(self, label: str, problems: list[str]) -> None:
        self.count += 1
        if self.canary is not None and self.canary.exists():
            problems = [*problems, "THE CANARY FILE APPEARED: the payload ran"]
            self.canary.unlink()
        self.failures += [f"{label}: {problem}" for problem in problems]


# --------------------------------------------------------------------------- pickles


@pytest.fixture
def no_key_in_environment(monkeypatch):
    monkeypatch.delenv("NNSAVE_KEY", raising=False)


@pytest.fixture
def evil_pickle(tmp_path, no_key_in_environment):
    """A genuine signed joblib file, and a hostile one beside it (no manifest yet)."""
    canary = tmp_path / f"canary-{secrets.token_hex(4)}"
    genuine = nnsave.save({"weights": np.arange(4)}, tmp_path / "genuine.joblib", key=KEY)
    import joblib

    evil = tmp_path / "evil.joblib"
    joblib.dump({"weights": Canary(canary)}, evil)
    # The payload is live: a plain unpickler runs it.
    pickle.loads(pickle.dumps(Canary(canary)))
    assert canary.read_text() == "the payload ran"
    canary.unlink()
    return genuine, evil, canary


def test_pickle_canary_never_runs(evil_pickle, ledger, monkeypatch):
    genuine, evil, canary = evil_pickle
    s = Scenarios(canary)

    def no_manifest_yet():
        s.check("load, no manifest", refused(lambda: nnsave.load(evil), evil, UntrustedFileError))
        s.check("load under a key, no manifest", refused(lambda: nnsave.load(evil, key=KEY), evil, UntrustedFileError))
        s.check("verify, no manifest", refused(lambda: nnsave.verify(evil), evil, IntegrityError))
        s.check("inspect, no manifest", holds(lambda: nnsave.inspect(evil).integrity, lambda v: v is Integrity.NO_MANIFEST, "status"))

    no_manifest_yet()
    # The genuine manifest beside the hostile payload: a mismatch.
    manifest_of(evil).write_bytes(manifest_of(genuine).read_bytes())
    s.check("load, genuine manifest of another file", refused(lambda: nnsave.load(evil), evil, IntegrityError))
    s.check("load under a key, genuine manifest of another file", refused(lambda: nnsave.load(evil, key=KEY), evil))
    s.check("verify, genuine manifest of another file", refused(lambda: nnsave.verify(evil), evil, IntegrityError))

    # The attacker re-hashes the manifest for the hostile payload.
    for label, forgery in {
        "unsigned": dict(signature="drop"),
        "with the genuine signature copied": dict(signature="keep"),
        "signed with the attacker's key": dict(signature="drop", key=ATTACKER_KEY),
    }.items():
        forge_manifest(evil, genuine, **forgery)
        s.check(f"load under a key, forged manifest {label}",
                refused(lambda: nnsave.load(evil, key=KEY), evil, UntrustedFileError))
        s.check(f"load under a bytes key, forged manifest {label}",
                refused(lambda: nnsave.load(evil, key=KEY.encode()), evil, UntrustedFileError))
        with monkeypatch.context() as patch:
            patch.setenv("NNSAVE_KEY", KEY)
            s.check(f"load under NNSAVE_KEY, forged manifest {label}",
                    refused(lambda: nnsave.load(evil), evil, UntrustedFileError))
        # A re-hashed manifest matches its payload: inspect and verify say so (integrity, not origin).
        s.check(f"inspect, forged manifest {label}",
                holds(lambda: nnsave.inspect(evil).integrity, lambda v: v is Integrity.INTACT, "status"))
        s.check(f"verify, forged manifest {label}",
                holds(lambda: nnsave.verify(evil).integrity, lambda v: v is Integrity.INTACT, "status"))

    # A file shared by hash: the pinned hash is the genuine file's.
    pinned = hashlib.sha256(genuine.read_bytes()).hexdigest()
    s.check("load with expected_sha256 of another file",
            refused(lambda: nnsave.load(evil, expected_sha256=pinned), evil, IntegrityError))
    s.check("load with expected_sha256 of another file, under a key",
            refused(lambda: nnsave.load(evil, expected_sha256=pinned, key=KEY), evil))
    manifest_of(evil).unlink()
    s.check("load with expected_sha256 of another file, no manifest",
            refused(lambda: nnsave.load(evil, expected_sha256=pinned), evil, IntegrityError))
    no_manifest_yet()

    # The genuine file passes every one of those checks: they refuse the attack, not everything.
    s.count += 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(nnsave.load(genuine, key=KEY)["weights"]) == [0, 1, 2, 3]
        assert list(nnsave.load(genuine, expected_sha256=pinned.upper())["weights"]) == [0, 1, 2, 3]
    ledger.record("pickle canary through load, inspect and verify", s.failures, trials=s.count)
    assert_no_failures(s.failures, "attempts to run a pickle's payload")


def test_pickle_canary_never_runs_through_the_command_line(evil_pickle, ledger):
    genuine, evil, canary = evil_pickle
    s = Scenarios(canary)
    for state in ("no manifest", "forged manifest"):
        if state == "forged manifest":
            forge_manifest(evil, genuine)
        shown = cli("inspect", str(evil))
        s.check(f"nnsave inspect, {state}", [] if shown.returncode == 0 and "evil.joblib" in shown.stdout
                else [f"exit {shown.returncode}: {shown.stderr[-300:]}"])
        shown = cli("inspect", "--json", str(evil))
        s.check(f"nnsave inspect --json, {state}", [] if shown.returncode == 0 else [f"exit {shown.returncode}"])
        checked = cli("verify", str(evil))
        expected_status = 1 if state == "no manifest" else 0
        s.check(f"nnsave verify, {state}", [] if checked.returncode == expected_status
                else [f"exit {checked.returncode}, expected {expected_status}: {checked.stderr[-300:]}"])
    ledger.record("pickle canary through the command line", s.failures, trials=s.count)
    assert_no_failures(s.failures, "command-line runs on a hostile pickle")


# --------------------------------------------------------------------------- keras Lambda


@pytest.fixture
def lambda_model(keras, tmp_path, no_key_in_environment):
    canary = tmp_path / f"canary-{secrets.token_hex(4)}"
    source = f"lambda x: (__import__('pathlib').Path({str(canary)!r}).write_text('the lambda ran'), x)[1]"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(eval(source))])
    canary.unlink()  # building the model called it once
    path = nnsave.save(model, tmp_path / "lambda.keras")
    assert not canary.exists()
    return path, canary


def test_keras_lambda_refused_in_safe_mode(lambda_model, keras, ledger):
    path, canary = lambda_model
    s = Scenarios(canary)

    def refused_with_reason(call):
        problems = refused(call, path, UntrustedFileError)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                call()
        except UntrustedFileError as error:
            if "Lambda" not in str(error) or "trusted=True" not in str(error):
                problems.append(f"the message does not say it is a Lambda and what to do: {error}")
        except Exception:
            pass
        return problems

    s.check("load in safe mode, with its manifest", refused_with_reason(lambda: nnsave.load(path)))
    manifest_of(path).rename(path.with_name("kept.json"))
    s.check("load in safe mode, manifest removed", refused_with_reason(lambda: nnsave.load(path)))
    s.check("load with safe_mode=False, not trusted, manifest removed",
            refused(lambda: nnsave.load(path, safe_mode=False), path, UntrustedFileError))
    path.with_name("kept.json").rename(manifest_of(path))
    s.check("inspect lists the Lambda layer without running it",
            holds(lambda: [layer["type"] for layer in nnsave.inspect(path).layers or []],
                  lambda types: "Lambda" in types, "layer types"))

    # Keras's global switch must not override nnsave's safe mode.
    from keras.src.backend.common import global_state  # only to restore the switch afterwards

    before = global_state.get_global_attribute("safe_mode_saving")
    keras.config.enable_unsafe_deserialization()
    try:
        s.check("load in safe mode after keras.config.enable_unsafe_deserialization()",
                refused_with_reason(lambda: nnsave.load(path)))
    finally:
        global_state.set_global_attribute("safe_mode_saving", before)

    # The payload is live: loading it the trusting way runs it.
    nnsave.load(path, safe_mode=False, trusted=True)
    assert canary.read_text() == "the lambda ran"
    canary.unlink()
    ledger.record("keras Lambda in safe mode", s.failures, trials=s.count)
    assert_no_failures(s.failures, "loads of a Lambda model")


# --------------------------------------------------------------------------- hostile zips


def genuine_zip(kind: str, folder: Path, keras_module) -> Path:
    if kind == "keras":
        model = keras_module.Sequential([keras_module.Input((4,)), keras_module.layers.Dense(3)])
        return nnsave.save(model, folder / "genuine.keras")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    return nnsave.save(LogisticRegression(max_iter=300).fit(X, y), folder / "genuine.skops")


def hostile_zip(genuine: Path, target: Path, attack: str, token: str) -> str:
    """Copy ``genuine``'s members into ``target`` and add one hostile member; return its name."""
    names = {
        "traversal": f"../escaped-{token}.txt",
        "deep traversal": f"a/../../../escaped-{token}.txt",
        "absolute name": f"/tmp/escaped-{token}.txt",
        "backslash traversal": f"..\\escaped-{token}.txt",
        "zip bomb": "model.weights.h5" if genuine.suffix == ".keras" else "bomb.npy",
    }
    hostile = names[attack]
    with zipfile.ZipFile(genuine) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.namelist():
            if member != hostile:
                out.writestr(member, source.read(member))
        if attack == "zip bomb":
            member = zipfile.ZipInfo(hostile)
            member.compress_type = zipfile.ZIP_DEFLATED
            with out.open(member, "w") as stream:
                chunk = bytes(1 << 20)
                for _ in range(BOMB_BYTES >> 20):
                    stream.write(chunk)
        else:
            out.writestr(zipfile.ZipInfo(hostile), b"written outside the archive")
    return hostile


@pytest.fixture
def opened_members(monkeypatch):
    """Every zip member name opened for reading in this process (reads and extracts go through ZipFile.open).

    Opens for writing are not reads: nnsave writes empty members of the same
    names into an in-memory outline of a .skops archive.
    """
    seen: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self, name, mode="r", *args, **kwargs):
        if mode == "r":
            seen.append(name.filename if isinstance(name, zipfile.ZipInfo) else str(name))
        return original(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return seen


@pytest.mark.parametrize("kind", ["keras", "skops"])
def test_hostile_zips_refused_before_extraction(kind, keras, tmp_path, opened_members, ledger, no_key_in_environment):
    genuine = genuine_zip(kind, tmp_path, keras)
    token = secrets.token_hex(4)
    folder = tmp_path / "deep" / "inside"
    folder.mkdir(parents=True)
    s = Scenarios()
    escapes = [tmp_path / "deep" / f"escaped-{token}.txt", tmp_path / f"escaped-{token}.txt",
               Path("/tmp") / f"escaped-{token}.txt", Path.cwd().parent / f"escaped-{token}.txt"]
    for attack in ("traversal", "deep traversal", "absolute name", "backslash traversal", "zip bomb"):
        path = folder / f"hostile.{kind}"
        hostile = hostile_zip(genuine, path, attack, token)
        if attack == "zip bomb":
            assert path.stat().st_size < BOMB_BYTES // 100, "the bomb should be small on disk"
        for manifest in ("no manifest", "re-hashed manifest"):
            if manifest == "re-hashed manifest":
                forge_manifest(path, genuine)
            else:
                manifest_of(path).unlink(missing_ok=True)
            opened_members.clear()
            label = f"{kind}, {attack}, {manifest}"
            s.check(f"load: {label}", refused(lambda: nnsave.load(path), path, UntrustedFileError))
            if attack != "zip bomb":  # vouching lifts the bomb cap, never a name that leads outside
                s.check(f"load with trusted=True: {label}",
                        refused(lambda: nnsave.load(path, trusted=True), path, UntrustedFileError))
            s.check(f"inspect: {label}", holds(lambda: nnsave.inspect(path).path, lambda v: v == path, "described"))
            if hostile in opened_members:
                s.check(f"nothing extracted: {label}", [f"the hostile member {hostile!r} was opened"])
            escaped = [str(place) for place in escapes if place.exists()]
            for place in escaped:
                Path(place).unlink()
            s.check(f"nothing escaped: {label}", [f"a member was written to {place}" for place in escaped])
        if attack not in ("traversal", "zip bomb"):
            continue  # the command line runs the same inspect; two attacks show it is wired in
        shown = cli("inspect", str(path))
        s.check(f"nnsave inspect: {kind}, {attack}",
                [] if shown.returncode == 0 and path.name in shown.stdout else [f"exit {shown.returncode}: {shown.stderr[-300:]}"])
    ledger.record(f"hostile {kind} zips", s.failures, trials=s.count)
    assert_no_failures(s.failures, f"hostile .{kind} zips")


# --------------------------------------------------------------------------- skops types


def test_skops_untrusted_types_listed_and_refused(tmp_path, ledger, no_key_in_environment):
    import operator

    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import FunctionTransformer

    s = Scenarios()
    # Saved by someone else: its signature vouches for nothing here.
    path = nnsave.save(FunctionTransformer(func=operator.neg), tmp_path / "transform.skops", key=ATTACKER_KEY)
    X = np.array([[4.0], [9.0]])
    s.check("inspect lists the untrusted type",
            holds(lambda: nnsave.inspect(path).details.get("untrusted_types"), lambda v: v == ["_operator.neg"], "listed"))
    problems = refused(lambda: nnsave.load(path), path, UntrustedFileError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nnsave.load(path)
    except UntrustedFileError as error:
        if "_operator.neg" not in str(error) or "trusted_types" not in str(error):
            problems.append(f"the refusal does not name the type and the remedy: {error}")
    except Exception:
        pass
    s.check("load refuses the untrusted type", problems)
    s.check("an unrelated approval is not enough",
            refused(lambda: nnsave.load(path, trusted_types=["_operator.pos"]), path, UntrustedFileError))
    s.check("trusted_types approves it",
            holds(lambda: nnsave.load(path, trusted_types=["_operator.neg"]).transform(X),
                  lambda v: np.array_equal(v, -X), "transform"))
    # A file whose every type skops trusts loads with no approval at all.
    plain = nnsave.save(LinearRegression().fit(X, [1.0, 2.0]), tmp_path / "plain.skops")
    s.check("a file of trusted types lists none",
            holds(lambda: nnsave.inspect(plain).details.get("untrusted_types"), lambda v: v == "none", "listed"))
    s.check("and loads without approval", holds(lambda: nnsave.load(plain).predict(X).shape, lambda v: v == (2,), "shape"))
    ledger.record("skops untrusted types", s.failures, trials=s.count)
    assert_no_failures(s.failures, "skops type checks")
