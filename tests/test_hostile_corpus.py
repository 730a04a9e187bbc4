"""Issue 11's attacks and faults, each tried the way an attacker would, through the public API.

The attacker writes any file (manifests included), races the reader, sets
environment switches, and runs several processes at once. Every test here
fails on the code before the redesign (commit cb3ade1) and passes after it;
the tests use only names that code also had, or fall back where it had none.

Each attack has one authoritative test per surface it reaches. Where that
test lives in another file, it is named here and not repeated:

1. A forged manifest runs code: :func:`test_a_forged_manifest_authorises_no_code`.
2. The file is swapped during a load under ``key=`` or ``expected_sha256=``:
   :func:`test_a_swap_right_after_the_open_changes_nothing_that_is_read` (a
   hook, deterministic) and :func:`test_an_inotify_racer_never_gets_its_file_loaded`
   (a second process woken by inotify).
3. The digest cache is poisoned by a symlink flipped while ``inspect`` loops
   (flipped around each open: a racer's perfect timing):
   :func:`test_a_symlink_flip_under_inspect_poisons_no_digest`.
4. ``keras.config.enable_unsafe_deserialization()`` reaches past safe mode, in
   ``.keras`` and ``.safetensors``: :func:`test_a_tfsm_layer_reaches_no_outside_graph_after_the_global_switch`
   and :func:`test_a_vocabulary_path_reads_nothing_outside_after_the_global_switch`
   (inotify sees whether anything outside the file is opened);
   ``tests/test_keras_safe_mode.py`` tests the audit's every rule and message.
5. Concurrent saves lose data: ``tests/test_concurrent_saves.py``,
   ``test_writers_without_a_lock_of_their_own_lose_nothing``.
6. The disk bomb: :func:`test_a_disk_bomb_writes_nothing_under_tmpdir`.
7. FIFOs and ``/dev/zero`` hang the readers: :func:`test_no_special_file_blocks_a_verb`
   (``inspect``, ``verify``, ``load`` and the command line) and
   ``tests/test_checkpoint_hostile.py``, ``test_nothing_blocks_a_reader``
   (``ls``, ``latest_checkpoint``, ``resume``).
8. Odd but valid JSON crashes: :func:`test_odd_json_is_a_damaged_file_never_a_crash`
   (the verbs and the command line) and ``tests/test_checkpoint_hostile.py``,
   ``test_odd_json_in_a_newer_manifest_falls_back`` (the checkpoint readers).
9. A TensorFlow state file names ``../outside``: ``tests/test_checkpoint_hostile.py``,
   ``test_a_state_file_cannot_lead_outside``.
10. A planted, newer, unsigned checkpoint blocks ``resume`` under ``NNSAVE_KEY``:
    ``tests/test_checkpoint_hostile.py``,
    ``test_a_planted_unsigned_checkpoint_does_not_block_resume``.
11. Reading needs write access: ``tests/test_api.py``,
    ``test_loads_work_on_a_read_only_file_system_and_saves_name_the_target`` (a
    tmpfs remounted read-only, with another model's staging file) and
    ``test_loads_work_in_a_directory_that_can_be_searched_but_not_listed`` (0711,
    read as user 65534).
12. Keras's own safe-mode refusals leak as bare errors: ``tests/test_keras_safe_mode.py``,
    ``test_keras_s_own_refusal_is_an_nnsave_value_error_if_the_audit_missed_it``.

A pickle's payload here touches a marker file, so "the code ran" is a fact
on disk, not an inference. Everything that could hang runs under a deadline.
"""

from __future__ import annotations

import builtins
import ctypes
import hashlib
import io
import json
import os
import pickle
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from _safety import deadline

import nnsave
from nnsave import IntegrityError, NNSaveError, UntrustedFileError, digest_cache


class _AbsentBefore(Exception):
    """Stands in for an error class the code before the redesign did not have."""


NotAFileError = getattr(nnsave, "NotAFileError", _AbsentBefore)

KEY = "the team's shared key"
GENUINE = {"weights": [1.0, 2.0, 3.0], "note": "genuine"}
#: A verb that takes longer than this on a file of a few bytes is hanging.
DEADLINE_SECONDS = 10


# --------------------------------------------------------------------------- helpers


class Marker:
    """Unpickling this touches a file: proof that code from the file ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


def hostile_pickle(path: Path, *, size: int | None = None) -> Path:
    """Write a pickle that touches ``<path>.ran`` when loaded, padded to ``size`` bytes; return the marker."""
    marker = path.with_name(path.name + ".ran")

    def encode(padding: int) -> bytes:
        return pickle.dumps((Marker(marker), b"p" * padding), protocol=4)

    padding = 0
    data = encode(padding)
    while size is not None and len(data) != size:
        padding += size - len(data)
        assert padding >= 0, f"a hostile pickle cannot be as small as {size} bytes"
        data = encode(padding)
    path.write_bytes(data)
    return marker


def manifest_of(path: Path) -> Path:
    return path.with_name(path.name + nnsave.MANIFEST_SUFFIX)


def forge_manifest(payload: Path, format_name: str = "joblib") -> None:
    """The manifest anyone can write without nnsave: the payload's plain SHA-256 and size."""
    data = payload.read_bytes()
    document = {
        "schema_version": 1, "format": format_name, "nnsave_version": "0.1.0",
        "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
        "created_utc": "2026-01-01T00:00:00Z", "versions": {}, "class": "builtins.dict", "metadata": {},
    }
    manifest_of(payload).write_text(json.dumps(document))


def attempt(call):
    """``(value, None)`` if ``call()`` returns, ``(None, error)`` if it raises; warnings are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(), None
        except Exception as error:  # the caller judges the error
            return None, error


def cli(*arguments: object, timeout: float = 60) -> subprocess.CompletedProcess:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", "nnsave", *map(str, arguments)],
        capture_output=True, text=True, timeout=timeout, env=environment,
    )


#: Watching a directory for opens and creations needs Linux's inotify; elsewhere those tests skip.
needs_inotify = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")


class Inotify:
    """Linux inotify through ctypes: the events in one directory, read without blocking forever."""

    OPEN, CLOSE_NOWRITE, CREATE = 0x20, 0x10, 0x100
    _EVENT = struct.Struct("iIII")

    def __init__(self, directory: Path, mask: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.descriptor = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.descriptor < 0 or libc.inotify_add_watch(self.descriptor, os.fsencode(directory), mask) < 0:
            raise OSError(ctypes.get_errno(), "inotify is not available")

    def names(self, timeout: float = 0.0) -> list[str]:
        """The names of the entries that had events, waiting at most ``timeout`` for the first."""
        found = []
        while select.select([self.descriptor], [], [], timeout)[0]:
            data = os.read(self.descriptor, 1 << 16)
            offset = 0
            while offset < len(data):
                _, _, _, length = self._EVENT.unpack_from(data, offset)
                start = offset + self._EVENT.size
                found.append(data[start : start + length].rstrip(b"\0").decode())
                offset = start + length
            timeout = 0.0
        return found

    def close(self) -> None:
        os.close(self.descriptor)


def events_during(directory: Path, mask: int, call) -> tuple[Exception | None, list[str]]:
    """``call()``'s error (None if it returned) and the entries of ``directory`` that had events meanwhile."""
    watch = Inotify(directory, mask)
    try:
        _, error = attempt(call)
        return error, watch.names()
    finally:
        watch.close()


# --------------------------------------------------------------------------- 1. forged manifests


def test_a_forged_manifest_authorises_no_code(tmp_path):
    payload = tmp_path / "evil.joblib"
    marker = hostile_pickle(payload)
    forge_manifest(payload)
    _, error = attempt(lambda: nnsave.load(payload))
    assert not marker.exists(), "a manifest anyone could write made the pickle run"
    assert isinstance(error, UntrustedFileError) and str(payload) in str(error), error
    # It does describe this file, so inspect calls it intact, and says who vouched: nobody.
    assert "unsigned" in str(nnsave.inspect(payload))


# --------------------------------------------------------------------------- 2. a swap during the load


def vouched_pair(folder: Path, vouch: str) -> tuple[Path, dict]:
    """A file the team saved under its key, and how a caller vouches for it."""
    target = nnsave.save(GENUINE, folder / "model.joblib", key=KEY)
    if vouch == "key":
        return target, {"key": KEY}
    return target, {"expected_sha256": hashlib.sha256(target.read_bytes()).hexdigest()}


def names_target(path: object, target: Path) -> bool:
    if isinstance(path, int):
        return False
    return os.path.abspath(os.fsdecode(os.fspath(path))) == str(target)


def hook_opens(monkeypatch, path: Path, *, before=None, after=None) -> list[str]:
    """Run ``before()`` and ``after()`` around every open of ``path`` (by name) in this process.

    Both ``os.open`` and ``open`` are covered, whichever a reader uses.
    Returns the list of opens seen, filled in as they happen.
    """
    seen: list[str] = []

    def hooked(open_function):
        def opened(name, *args, **kwargs):
            if not names_target(name, path):
                return open_function(name, *args, **kwargs)
            seen.append(open_function.__name__)
            if before is not None:
                before()
            try:
                return open_function(name, *args, **kwargs)
            finally:
                if after is not None:
                    after()

        return opened

    for owner, name in ((os, "open"), (builtins, "open"), (io, "open")):
        monkeypatch.setattr(owner, name, hooked(getattr(owner, name)))
    return seen


@pytest.mark.parametrize("vouch", ["key", "pin"])
def test_a_swap_right_after_the_open_changes_nothing_that_is_read(tmp_path, monkeypatch, vouch):
    """The attacker renames a hostile file over the path the moment nnsave first opens it."""
    target, vouched = vouched_pair(tmp_path, vouch)
    evil = tmp_path / "evil.joblib"
    marker = hostile_pickle(evil)

    def swap_once():
        if evil.exists():
            os.replace(evil, target)

    opens = hook_opens(monkeypatch, target, after=swap_once)
    loaded, error = attempt(lambda: nnsave.load(target, **vouched))
    monkeypatch.undo()
    assert opens and not evil.exists(), "nnsave never opened the file, so nothing was raced"
    assert not marker.exists(), f"the file swapped in after the check was unpickled (under {vouch})"
    assert loaded == GENUINE or isinstance(error, (IntegrityError, UntrustedFileError)), error


RACER = textwrap.dedent(
    r'''
    """Wait for the payload to be closed after a read, then rename the hostile file over it."""
    import ctypes, os, select, struct, sys

    directory, name, hostile = sys.argv[1:4]
    libc = ctypes.CDLL(None, use_errno=True)
    descriptor = libc.inotify_init1(os.O_NONBLOCK)
    libc.inotify_add_watch(descriptor, os.fsencode(directory), 0x10)  # IN_CLOSE_NOWRITE
    event = struct.Struct("iIII")

    def closed_names(timeout):
        if not select.select([descriptor], [], [], timeout)[0]:
            return None
        data, offset, names = os.read(descriptor, 1 << 16), 0, []
        while offset < len(data):
            length = event.unpack_from(data, offset)[3]
            start = offset + event.size
            names.append(data[start : start + length].rstrip(b"\0").decode())
            offset = start + length
        return names

    print("ready", flush=True)
    for command in sys.stdin:
        while closed_names(0) is not None:
            pass  # events from before this trial
        print("armed", flush=True)
        outcome = "idle"
        while outcome == "idle":
            names = closed_names(5.0)
            if names is None:
                outcome = "timeout"
            elif name in names:
                os.replace(hostile, os.path.join(directory, name))
                outcome = "swapped"
        print(outcome, flush=True)
    '''
)


def read_line(process: subprocess.Popen, seconds: float) -> str:
    if not select.select([process.stdout], [], [], seconds)[0]:
        raise TimeoutError(f"the racer said nothing for {seconds} s")
    return process.stdout.readline().strip()


@needs_inotify
@pytest.mark.parametrize("vouch", ["key", "pin"])
def test_an_inotify_racer_never_gets_its_file_loaded(tmp_path, vouch):
    """A second process swaps the file the moment a reader closes it; ten loads, ten swaps."""
    target, vouched = vouched_pair(tmp_path, vouch)
    pristine, hostile_source, staged = tmp_path / "pristine", tmp_path / "hostile-source", tmp_path / "hostile"
    shutil.copyfile(target, pristine)
    marker = hostile_pickle(hostile_source)
    racer = subprocess.Popen(
        [sys.executable, "-c", RACER, str(tmp_path), target.name, str(staged)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    outcomes = []
    try:
        assert read_line(racer, 30) == "ready"
        for _ in range(10):
            shutil.copyfile(pristine, tmp_path / "restoring")
            os.replace(tmp_path / "restoring", target)
            shutil.copyfile(hostile_source, staged)
            racer.stdin.write("arm\n")
            racer.stdin.flush()
            assert read_line(racer, 10) == "armed"
            loaded, error = attempt(lambda: nnsave.load(target, **vouched))
            raced = read_line(racer, 10)
            outcomes.append((raced, marker.exists(), loaded == GENUINE, error))
            marker.unlink(missing_ok=True)
    finally:
        racer.kill()
        racer.wait()
        racer.stdin.close()
        racer.stdout.close()
    ran = sum(1 for _, code_ran, _, _ in outcomes if code_ran)
    assert ran == 0, f"the racer's pickle ran in {ran} of {len(outcomes)} loads under {vouch}"
    assert all(raced == "swapped" for raced, *_ in outcomes), f"the racer missed some loads: {outcomes}"
    for _, _, genuine, error in outcomes:
        assert genuine or isinstance(error, (IntegrityError, UntrustedFileError)), error


# --------------------------------------------------------------------------- 3. digest-cache poisoning

def point(link: Path, target: Path) -> None:
    staging = link.with_name(link.name + ".flip")
    staging.symlink_to(target)
    os.replace(staging, link)


def test_a_symlink_flip_under_inspect_poisons_no_digest(tmp_path, monkeypatch):
    """A link that names an evil file is flipped to a genuine one of the same size for each open.

    That is a racer's perfect timing, while inspect runs in a loop: every
    look at the link by name sees the evil file, every read gets the genuine
    one. The evil file sits beside a copy of the genuine, signed manifest;
    should the cache record the genuine digest under the evil file's
    identity, a load under the key takes that digest and runs the pickle.
    """
    monkeypatch.setenv("NNSAVE_CACHE_DIR", str(tmp_path / "digest-cache"))
    monkeypatch.delenv("NNSAVE_DIGEST_CACHE", raising=False)
    monkeypatch.setattr(digest_cache, "MIN_CACHED_BYTES", 1)  # cache these small files, as it would large ones
    monkeypatch.setattr(digest_cache, "RACY_SECONDS", 0.05)
    genuine = nnsave.save({**GENUINE, "padding": b"g" * 4000}, tmp_path / "genuine.joblib", key=KEY)
    evil = tmp_path / "evil.joblib"
    marker = hostile_pickle(evil, size=genuine.stat().st_size)
    link = tmp_path / "model.joblib"
    for path in (link, evil):
        shutil.copyfile(manifest_of(genuine), manifest_of(path))
    point(link, evil)
    time.sleep(0.2)  # both files settle: older than the cache's racy window
    with monkeypatch.context() as patch:
        opens = hook_opens(patch, link, before=lambda: point(link, genuine), after=lambda: point(link, evil))
        for _ in range(20):
            attempt(lambda: nnsave.inspect(link))
    assert opens, "inspect never opened the link, so nothing was flipped"
    _, error = attempt(lambda: nnsave.load(evil, key=KEY))
    assert not marker.exists(), "inspect cached the genuine digest for the evil file, and its pickle ran"
    assert isinstance(error, IntegrityError), error
    assert attempt(lambda: nnsave.load(genuine, key=KEY))[0]["note"] == "genuine"


# --------------------------------------------------------------------------- 4. the global switch


def with_layer_appended(path: Path, layer: dict) -> None:
    """Append ``layer`` to the model config inside a saved file, as an attacker edits one by hand."""

    def appended(text: str) -> str:
        config = json.loads(text)
        config["config"]["layers"].append(layer)
        return json.dumps(config)

    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
        members["config.json"] = appended(members["config.json"].decode()).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return
    data = path.read_bytes()  # safetensors: an 8-byte length, a JSON header, the tensors
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = header["__metadata__"]
    (key,) = [name for name, value in metadata.items() if value.startswith("{") and '"class_name"' in value]
    metadata[key] = appended(metadata[key])
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + length :])


def outside_reach(tmp_path: Path, keras, suffix: str, layer: dict) -> Path:
    """A small model saved by nnsave, then given ``layer`` by hand; its manifest removed."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    path = nnsave.save(model, tmp_path / f"model{suffix}")
    with_layer_appended(path, layer)
    manifest_of(path).unlink()  # safe mode needs nobody to vouch: an unverified file may load
    return path


def assert_safe_mode_reads_nothing_outside(path: Path, outside: Path, what: str) -> None:
    error, opened = events_during(outside, Inotify.OPEN, lambda: nnsave.load(path))
    assert not opened, f"safe mode opened {opened} outside the file: {what}"
    assert isinstance(error, UntrustedFileError) and "safe mode" in str(error), error


@needs_inotify
@pytest.mark.parametrize("suffix", [".keras", ".safetensors"])
def test_a_tfsm_layer_reaches_no_outside_graph_after_the_global_switch(tmp_path, keras, unsafe_switch_on, suffix):
    outside = tmp_path / "outside"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)]).export(outside, verbose=False)
    layer = {"module": "keras.layers", "class_name": "TFSMLayer", "registered_name": None,
             "config": {"name": "outside", "filepath": str(outside), "call_endpoint": "serve"}}
    path = outside_reach(tmp_path, keras, suffix, layer)
    assert_safe_mode_reads_nothing_outside(path, outside, "a TFSMLayer's SavedModel")


@needs_inotify
@pytest.mark.parametrize("suffix", [".keras", ".safetensors"])
def test_a_vocabulary_path_reads_nothing_outside_after_the_global_switch(tmp_path, keras, unsafe_switch_on, suffix):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("password\n")
    layer = {"module": "keras.layers", "class_name": "StringLookup", "registered_name": None,
             "config": {"name": "words", "vocabulary": str(outside / "secret.txt"), "max_tokens": None,
                        "num_oov_indices": 1, "oov_token": "[UNK]", "mask_token": None}}
    path = outside_reach(tmp_path, keras, suffix, layer)
    assert_safe_mode_reads_nothing_outside(path, outside, "a StringLookup's vocabulary")


# --------------------------------------------------------------------------- 6. the disk bomb


def bomb(path: Path, keras) -> Path:
    """A small, genuine .keras model plus 300 members of 1 MiB of zeros each: about 0.35 MB."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(path.with_name("plain.keras"))
    with zipfile.ZipFile(path.with_name("plain.keras")) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for member in source.infolist():
            out.writestr(member, source.read(member))
        zeros = bytes(1 << 20)
        for number in range(300):
            out.writestr(f"assets/zeros-{number:03d}.bin", zeros)
    return path


@needs_inotify
def test_a_disk_bomb_writes_nothing_under_tmpdir(tmp_path, monkeypatch, keras):
    path = bomb(tmp_path / "bomb.keras", keras)
    assert path.stat().st_size < 400_000
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile reads TMPDIR again

    def inspect_then_load():
        attempt(lambda: nnsave.inspect(path))
        return nnsave.load(path)

    error, created = events_during(scratch, Inotify.CREATE, inspect_then_load)
    assert not created, f"loading the 0.35 MB bomb created {created[:3]}... under $TMPDIR"
    assert isinstance(error, UntrustedFileError) and "zip bomb" in str(error), error


# --------------------------------------------------------------------------- 7. files that block


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def link_to_zeros(path: Path) -> None:
    path.symlink_to("/dev/zero")


# A manifest linked to /dev/zero is not here: the code before the redesign
# already read manifests with a bound; tests/test_artifact.py keeps it so.
BLOCKED = {
    "payload: a FIFO": ("payload", make_fifo),
    "payload: a link to /dev/zero": ("payload", link_to_zeros),
    "manifest: a FIFO": ("manifest", make_fifo),
}


@pytest.mark.parametrize(("where", "block"), BLOCKED.values(), ids=BLOCKED.keys())
def test_no_special_file_blocks_a_verb(tmp_path, where, block):
    target = nnsave.save(GENUINE, tmp_path / "model.joblib")
    blocked = target if where == "payload" else manifest_of(target)
    blocked.unlink()
    block(blocked)
    for verb in (nnsave.inspect, nnsave.verify, nnsave.load):
        with deadline(DEADLINE_SECONDS):
            _, error = attempt(lambda: verb(target))
        assert not isinstance(error, TimeoutError), f"{verb.__name__} hangs on {where} that is {block.__name__}"
        if where == "payload":
            assert isinstance(error, NotAFileError) and str(target) in str(error), error
        elif verb is nnsave.inspect:
            assert error is None or isinstance(error, NNSaveError), error
        else:
            assert isinstance(error, IntegrityError) and "damaged" in str(error), error
    for command in ("inspect", "verify"):
        try:
            result = cli(command, target, timeout=DEADLINE_SECONDS * 3)
        except subprocess.TimeoutExpired:
            pytest.fail(f"nnsave {command} hangs on a {where} that is {block.__name__}")
        assert "Traceback" not in result.stderr
        assert result.returncode in (0, 1, 2), result.stderr


# --------------------------------------------------------------------------- 8. odd JSON


def keras_by_hand(path: Path, config: bytes) -> Path:
    """A .keras archive whose config.json is ``config``, written without Keras and without a manifest."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", config)
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("model.weights.h5", b"")
    return path


DEEP = "[" * 100_000 + "]" * 100_000
# Wrong types in a manifest are not here: the code before the redesign already
# refused them; tests/test_manifest.py keeps it so.
ODD_MANIFESTS = {
    "deep nesting": lambda text: text.replace('"metadata": {', f'"metadata": {{"deep": {DEEP}, '),
    "a 5000-digit integer": lambda text: text.replace('"size": ', '"size": ' + "9" * 5000 + ', "was": '),
}
ODD_CONFIGS = {
    '"config": []': b'{"module": "keras", "class_name": "Sequential", "config": []}',
    "deep nesting": b'{"class_name": "Sequential", "config": ' + DEEP.encode() + b"}",
    "a 5000-digit integer": b'{"class_name": "Sequential", "config": {"layers": ' + b"7" * 5000 + b"}}",
    "a list where a string belongs": b'{"class_name": ["Sequential"], "config": {"layers": []}}',
}


@pytest.mark.parametrize("case", [*(f"manifest: {c}" for c in ODD_MANIFESTS), *(f"config: {c}" for c in ODD_CONFIGS)])
def test_odd_json_is_a_damaged_file_never_a_crash(tmp_path, case):
    """Valid JSON of the wrong shape is a damaged file: an nnsave error, exit status 1, no traceback."""
    kind, _, name = case.partition(": ")
    if kind == "manifest":
        target = nnsave.save(GENUINE, tmp_path / "model.joblib", metadata={"epoch": 1})
        manifest_of(target).write_text(ODD_MANIFESTS[name](manifest_of(target).read_text()))
    else:  # a re-hashed manifest, so that every verb gets as far as the config
        target = keras_by_hand(tmp_path / "model.keras", ODD_CONFIGS[name])
        forge_manifest(target, "keras")
    for verb in (nnsave.load, nnsave.verify):
        _, error = attempt(lambda: verb(target))
        assert isinstance(error, NNSaveError) and str(target) in str(error), f"{verb.__name__}: {error!r}"[:600]
    _, error = attempt(lambda: nnsave.inspect(target))
    assert error is None or isinstance(error, NNSaveError), f"inspect: {error!r}"[:600]
    for command in ("inspect", "verify"):
        result = cli(command, target)
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr[-600:]
        assert result.returncode in ((0, 1) if command == "inspect" else (1,)), (command, result.returncode)
