"""The public verbs end to end: the trust rule, paths, arguments, and what the caller sees."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

import nnsave
from nnsave import trust
from nnsave.errors import (
    DirectoryGivenError,
    FileMissingError,
    IntegrityError,
    InvalidArgumentError,
    NotAFileError,
    Problem,
    TargetExistsError,
    UntrustedFileError,
    UnwritableError,
)
from nnsave.hashing import hash_buffer
from nnsave.manifest import manifest_path


class _Marker:
    """Unpickling this touches a file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _hostile_pickle(path, marker):
    path.write_bytes(pickle.dumps(_Marker(marker)))


def _forge_manifest(path, **changes):
    """A manifest anyone can write: the plain digest and size of the file, no signature."""
    data = path.read_bytes()
    document = {
        "schema_version": 2, "format": "joblib", "nnsave_version": "0.2.0", "size": len(data),
        "digests": {"blake3": hash_buffer(data, ["blake3"]).values["blake3"]},
        "created_utc": "2026-01-01T00:00:00Z", "versions": {}, "class": "builtins.dict",
        "expects": {}, "metadata": {},
    }
    document.update(changes)
    manifest_path(path).write_text(json.dumps(document))


def test_your_own_files_load_with_a_bare_load(tmp_path):
    target = nnsave.save({"w": np.arange(4)}, tmp_path / "mine.joblib", metadata={"epoch": 3})
    assert np.array_equal(nnsave.load(target)["w"], np.arange(4))
    info = nnsave.inspect(target)
    assert info.integrity is nnsave.Integrity.INTACT
    assert info.signature is nnsave.SignatureStatus.VALID
    assert info.metadata == {"epoch": 3}


def test_a_forged_manifest_does_not_make_a_pickle_run(tmp_path):
    """Issue 11, attack 1: a plain digest and size prove integrity and authorise nothing."""
    payload, marker = tmp_path / "evil.joblib", tmp_path / "ran"
    _hostile_pickle(payload, marker)
    _forge_manifest(payload)
    with pytest.raises(UntrustedFileError) as caught:
        nnsave.load(payload)
    assert not marker.exists()
    text = str(caught.value)
    assert "not signed" in text and "key=" in text and "expected_sha256" in text
    info = nnsave.inspect(payload)
    assert info.integrity is nnsave.Integrity.INTACT and info.signature is nnsave.SignatureStatus.UNSIGNED
    assert "unsigned" in str(info)


def test_a_file_signed_with_another_key_needs_that_key(tmp_path):
    target = nnsave.save([1, 2], tmp_path / "theirs.joblib", key="their team key")
    with pytest.raises(UntrustedFileError, match="signed with another key"):
        nnsave.load(target)
    assert nnsave.load(target, key="their team key") == [1, 2]
    assert nnsave.inspect(target).signature is nnsave.SignatureStatus.OTHER_KEY


def test_a_named_key_requires_its_signature_on_every_file(tmp_path, monkeypatch):
    mine = nnsave.save([1], tmp_path / "mine.joblib")
    monkeypatch.setenv("NNSAVE_KEY", "team key")
    with pytest.raises(UntrustedFileError, match="a key was named"):
        nnsave.load(mine)
    shared = nnsave.save([2], tmp_path / "shared.joblib")  # signed with NNSAVE_KEY now
    assert nnsave.load(shared) == [2]


def test_a_pin_vouches_for_one_exact_file(tmp_path):
    payload, marker = tmp_path / "pinned.joblib", tmp_path / "ran"
    payload.write_bytes(pickle.dumps({"a": 1}))
    pin = hashlib.sha256(payload.read_bytes()).hexdigest()
    with warnings.catch_warnings():
        warnings.simplefilter("error", nnsave.UnverifiedFileWarning)  # the pin checked every byte
        assert nnsave.load(payload, expected_sha256=pin.upper()) == {"a": 1}
    _hostile_pickle(payload, marker)
    with pytest.raises(IntegrityError, match="not the file you expected"):
        nnsave.load(payload, expected_sha256=pin)
    assert not marker.exists()
    with pytest.raises(InvalidArgumentError, match="64 hex digits"):
        nnsave.load(payload, expected_sha256="abc")


def test_trusted_true_vouches_and_a_missing_manifest_warns(tmp_path):
    payload = tmp_path / "plain.joblib"
    payload.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UntrustedFileError, match="missing"):
        nnsave.load(payload)
    with pytest.warns(nnsave.UnverifiedFileWarning, match="no nnsave manifest"):
        assert nnsave.load(payload, trusted=True) == [1, 2, 3]


def test_the_bytes_verified_are_the_bytes_loaded(tmp_path, monkeypatch):
    """Issue 11, attack 2, deterministically: the file is swapped right after the check."""
    target = nnsave.save({"genuine": True}, tmp_path / "m.joblib")
    evil, marker = tmp_path / "evil.joblib", tmp_path / "ran"
    _hostile_pickle(evil, marker)
    decide = trust.decide

    def swap_then_decide(*args, **kwargs):
        os.replace(evil, target)  # the attacker wins the race
        return decide(*args, **kwargs)

    monkeypatch.setattr(trust, "decide", swap_then_decide)
    assert nnsave.load(target) == {"genuine": True}
    assert not marker.exists()


class _ReadCounter:
    """Counts the opens of one file and the bytes read from it by any descriptor."""

    def __init__(self, monkeypatch, path):
        self.identity = (os.stat(path).st_dev, os.stat(path).st_ino)
        self.opens, self.bytes_read, self.descriptors = 0, 0, set()
        real_open, real_preadv, real_read = os.open, os.preadv, os.read

        def counted_open(name, flags, *args, **kwargs):
            descriptor = real_open(name, flags, *args, **kwargs)
            status = os.fstat(descriptor)
            if (status.st_dev, status.st_ino) == self.identity:
                self.opens += 1
                self.descriptors.add(descriptor)
            return descriptor

        def counted_preadv(descriptor, buffers, offset, *args):
            count = real_preadv(descriptor, buffers, offset, *args)
            self.bytes_read += count if descriptor in self.descriptors else 0
            return count

        def counted_read(descriptor, size):
            data = real_read(descriptor, size)
            self.bytes_read += len(data) if descriptor in self.descriptors else 0
            return data

        monkeypatch.setattr(os, "open", counted_open)
        monkeypatch.setattr(os, "preadv", counted_preadv)
        monkeypatch.setattr(os, "read", counted_read)


@pytest.mark.parametrize(
    ("suffix", "mapped"),
    [(".joblib", False), (".joblib", True), (".skops", False), (".keras", False), (".safetensors", False)],
    ids=["joblib", "joblib-mapped", "skops", "keras", "safetensors"],
)
def test_a_verified_load_opens_the_file_once_and_reads_its_bytes_once(tmp_path, monkeypatch, request, suffix, mapped):
    """Issue 16, read once: the bytes hashed are the bytes deserialised, not read again."""
    if suffix in (".keras", ".safetensors"):
        obj = request.getfixturevalue("trained_sequential")
    else:
        obj = {"weights": np.arange(1 << 19 if mapped else 1000, dtype=np.float32)}  # 2 MiB: mapped
    target = nnsave.save(obj, tmp_path / f"model{suffix}")
    size = target.stat().st_size
    assert (size >= nnsave.storage.MAP_THRESHOLD) is mapped
    counter = _ReadCounter(monkeypatch, target)
    loaded = nnsave.load(target)
    monkeypatch.undo()
    assert counter.opens == 1
    # A copy in private memory (small files), or a mapping (large ones): the
    # bytes pass once, plus the 16 of the magic-number check.
    assert counter.bytes_read <= (16 if mapped else size + 16)
    if suffix in (".joblib", ".skops"):
        assert np.array_equal(loaded["weights"], obj["weights"])
    else:
        assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), obj.get_weights()))


def test_damage_is_reported_with_its_kind(tmp_path):
    target = nnsave.save(np.arange(100), tmp_path / "a.joblib")
    stamp = os.stat(manifest_path(target))
    target.write_bytes(target.read_bytes()[:-10])
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    with pytest.raises(IntegrityError, match="truncated") as caught:
        nnsave.load(target, trusted=True)
    assert caught.value.problem is Problem.TRUNCATED
    with pytest.raises(IntegrityError):
        nnsave.verify(target)


def test_a_stale_manifest_is_named_as_such(tmp_path):
    target = nnsave.save(np.arange(10), tmp_path / "a.joblib")
    import joblib

    later = os.stat(manifest_path(target)).st_mtime + 10
    joblib.dump(np.arange(20), target)  # saved again without nnsave
    os.utime(target, (later, later))
    with pytest.raises(IntegrityError, match="stale") as caught:
        nnsave.load(target)
    assert caught.value.problem is Problem.STALE_MANIFEST
    assert "truncated" not in str(caught.value)


@pytest.mark.parametrize("spell", ["~/{}", "bytes", "pathlike", "upper"])
def test_paths_in_every_spelling(tmp_path, monkeypatch, spell):
    monkeypatch.setenv("HOME", str(tmp_path))
    name = "m.joblib"
    path = {
        "~/{}": "~/" + name,
        "bytes": os.fsencode(tmp_path / name),
        "pathlike": tmp_path / name,
        "upper": tmp_path / "M.JOBLIB",
    }[spell]
    written = nnsave.save([5], path)
    assert written.exists() and written.is_absolute() or spell == "upper"
    assert nnsave.load(path) == [5]


def test_a_directory_a_fifo_and_a_file_object_get_clear_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DirectoryGivenError, match="is a directory"):
        nnsave.inspect(".")
    with pytest.raises(DirectoryGivenError):
        nnsave.load(tmp_path)
    fifo = tmp_path / "pipe.joblib"
    os.mkfifo(fifo)
    with pytest.raises(NotAFileError, match="FIFO"):
        nnsave.load(fifo)
    with pytest.raises(InvalidArgumentError, match="file object"):
        nnsave.save([1], tmp_path / "f.joblib", manifest=tmp_path / "elsewhere.nnsave.json")
    with pytest.raises(InvalidArgumentError, match="storage_options apply to URLs"):
        nnsave.load(tmp_path / "f.joblib", storage_options={"anon": True})
    with pytest.raises(InvalidArgumentError, match="not int"):
        nnsave.load(3)
    with pytest.raises(FileMissingError, match="No such file"):
        nnsave.load(tmp_path / "absent.joblib")


def test_every_argument_applies_or_raises_naming_itself(tmp_path):
    target = tmp_path / "a.joblib"
    for call, words in [
        (lambda: nnsave.save([1], target, metadata={1: "x"}), "key 1"),
        (lambda: nnsave.save([1], target, compress="fast"), "compress='fast'"),
        (lambda: nnsave.save([1], target, compress=12), "compress=12"),
        (lambda: nnsave.save([1], target, overwrite="yes"), "overwrite"),
    ]:
        with pytest.raises(InvalidArgumentError, match=words) as caught:
            call()
        assert str(target) in str(caught.value)
    assert not target.exists(), "nothing was written"
    nnsave.save([1], target)
    for call, words in [
        (lambda: nnsave.load(target, mmap_mode="x"), "mmap_mode='x'"),
        (lambda: nnsave.load(target, trusted_types=["a.B"]), "trusted_types"),
        (lambda: nnsave.load(target, trusted_types="a.B"), "trusted_types"),
        (lambda: nnsave.load(target, trusted="yes"), "trusted"),
    ]:
        with pytest.raises(InvalidArgumentError, match=words):
            call()


def test_overwrite_false_and_missing_directories(tmp_path):
    target = nnsave.save([1], tmp_path / "a.joblib")
    with pytest.raises(TargetExistsError):
        nnsave.save([2], target, overwrite=False)
    with pytest.raises(FileMissingError, match="does not exist"):
        nnsave.save([1], tmp_path / "no" / "such" / "a.joblib")
    with pytest.raises(DirectoryGivenError):
        nnsave.save([1], tmp_path)


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only file system: tmpfs, filled, then remounted read-only."""
    mount = tmp_path / "ro"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode:
        pytest.fail(f"this test mounts a tmpfs (root, CAP_SYS_ADMIN): {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_loads_work_on_a_read_only_file_system_and_saves_name_the_target(read_only_folder):
    target = nnsave.save({"a": 1}, read_only_folder / "m.joblib")
    (read_only_folder / f".other.joblib{nnsave.storage.TEMP_MARKER}left").write_bytes(b"a leftover")
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_folder)], check=True)
    assert nnsave.load(target) == {"a": 1}
    assert nnsave.verify(target).integrity is nnsave.Integrity.INTACT
    with pytest.raises(UnwritableError, match="read-only") as caught:
        nnsave.save({"a": 2}, target)
    assert str(target) in str(caught.value) and "nnsave-tmp" not in str(caught.value)


def test_loads_work_in_a_directory_that_can_be_searched_but_not_listed():
    """A 0711 directory, read by another user (nobody): no lock and no listing are needed."""
    base = pathlib.Path(tempfile.mkdtemp(prefix="nnsave-0711-"))  # in /tmp, which anyone may search
    folder = base / "shared"
    folder.mkdir()
    target = nnsave.save({"a": 1}, folder / "m.joblib")
    for path in (target, manifest_path(target)):
        path.chmod(0o644)
    for directory in (folder, base):
        directory.chmod(0o711)
    # The child keeps this process's loaded modules: the interpreter's own
    # files need not be readable by the user it becomes.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - its outcome is checked through the exit status
        status = 3
        try:
            os.environ["NNSAVE_KEY_FILE"] = "/nonexistent/signing.key"
            os.environ["NNSAVE_DIGEST_CACHE"] = "0"
            os.setgid(65534)
            os.setuid(65534)
            status = 1 if os.access(folder, os.R_OK) else 0 if nnsave.load(target, trusted=True) == {"a": 1} else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    shutil.rmtree(base)
    assert os.waitstatus_to_exitcode(status) == 0, "1: listable; 2: wrong object; 3: the load raised"


def test_inspect_and_verify_describe_without_loading(tmp_path):
    target = nnsave.save(np.zeros(3), tmp_path / "z.joblib", sha256=True)
    info = nnsave.verify(target)
    assert set(info.digests) == {"blake3", "sha256"}
    assert info.digests["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert all(len(line) <= 88 for line in str(info).splitlines())
    plain = tmp_path / "plain.joblib"
    plain.write_bytes(pickle.dumps(1))
    with pytest.raises(IntegrityError, match="no manifest"):
        nnsave.verify(plain)
    assert nnsave.inspect(plain).integrity is nnsave.Integrity.NO_MANIFEST


def test_warnings_point_at_the_callers_line(tmp_path):
    target = nnsave.save([1], tmp_path / "a.joblib")
    document = json.loads(manifest_path(target).read_text())
    document["versions"]["joblib"] = "0.1"
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    manifest_path(target).write_text(json.dumps(unsigned))
    with pytest.warns(nnsave.VersionMismatchWarning) as caught:
        nnsave.load(target, trusted=True)
    assert caught[0].filename == __file__


def test_the_cli_matches_the_api(tmp_path):
    target = nnsave.save([1], tmp_path / "a.joblib")
    result = subprocess.run([sys.executable, "-m", "nnsave", "verify", str(target)], capture_output=True, text=True)
    assert result.returncode == 0 and "signed with your key" in result.stdout
