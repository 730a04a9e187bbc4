"""The digest cache returns a recorded digest only for the exact file version it was recorded for."""

from __future__ import annotations

import doctest
import errno
import hashlib
import json
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nnsave import digest_cache, storage

#: Short enough to keep the tests quick, longer than any kernel's timestamp tick (at most 10 ms).
RACY = 0.05


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test gets its own cache directory, caches files of any size, and settles quickly."""
    directory = tmp_path / "cache" / "digests"
    monkeypatch.setenv(digest_cache.CACHE_DIR_VARIABLE, str(directory))
    monkeypatch.delenv(digest_cache.SWITCH_VARIABLE, raising=False)
    monkeypatch.setattr(digest_cache, "MIN_CACHED_BYTES", 1)
    monkeypatch.setattr(digest_cache, "RACY_SECONDS", RACY)
    return directory


def settle() -> None:
    """Wait until the timestamps of everything written so far count as settled."""
    time.sleep(RACY + 0.01)


def true_digest(path: Path) -> storage.Digest:
    data = path.read_bytes()
    return storage.Digest(hashlib.sha256(data).hexdigest(), len(data))


def entries(directory: Path) -> list[Path]:
    return sorted(directory.iterdir()) if directory.exists() else []


@pytest.fixture
def recorded(tmp_path, cache):
    """A settled payload whose digest has been recorded."""
    path = tmp_path / "payload.bin"
    path.write_bytes(b"a" * 1000)
    settle()
    assert digest_cache.file_digest(path) == true_digest(path)
    assert len(entries(cache)) == 1
    return path


def forbid_hashing(monkeypatch):
    def fail(path):
        raise AssertionError(f"{path} was hashed")

    monkeypatch.setattr(storage, "hash_file", fail)


def count_hashing(monkeypatch) -> list[Path]:
    calls: list[Path] = []
    real = storage.hash_file

    def counted(path):
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(storage, "hash_file", counted)
    return calls


def restore_times(path: Path, status: os.stat_result) -> None:
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))


# Recording and hitting


def test_recorded_digest_is_returned_without_reading_the_file(recorded, cache, monkeypatch):
    expected = true_digest(recorded)
    forbid_hashing(monkeypatch)
    assert digest_cache.cached_digest(recorded) == expected
    assert digest_cache.file_digest(recorded) == expected


def test_entry_is_small_json_named_by_the_real_path(recorded, cache):
    (entry,) = entries(cache)
    real = os.path.realpath(recorded)
    assert entry.name == hashlib.sha256(os.fsencode(real)).hexdigest() + ".json"
    document = json.loads(entry.read_bytes())
    status = os.stat(recorded)
    assert document == {
        "path": real,
        "dev": status.st_dev,
        "ino": status.st_ino,
        "size": 1000,
        "mtime_ns": status.st_mtime_ns,
        "ctime_ns": status.st_ctime_ns,
        "recorded_ns": document["recorded_ns"],
        "sha256": true_digest(recorded).sha256,
    }
    assert not (cache / (entry.name + ".nnsave.json")).exists(), "cache entries have no manifest"


def test_created_cache_directory_is_private(recorded, cache):
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700


def test_a_symlink_shares_the_entry_of_its_target(recorded, tmp_path, monkeypatch):
    link = tmp_path / "link.bin"
    link.symlink_to(recorded)
    forbid_hashing(monkeypatch)
    assert digest_cache.file_digest(link) == true_digest(recorded)


def test_small_files_are_always_hashed(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(digest_cache, "MIN_CACHED_BYTES", 1001)
    path = tmp_path / "small.bin"
    path.write_bytes(b"a" * 1000)
    settle()
    calls = count_hashing(monkeypatch)
    for _ in range(2):
        assert digest_cache.file_digest(path) == true_digest(path)
    assert len(calls) == 2 and entries(cache) == []
    assert digest_cache.cached_digest(path) is None


def test_file_hashed_right_after_it_was_written_is_not_recorded(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(digest_cache, "RACY_SECONDS", 5.0)
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"fresh" * 100)
    assert digest_cache.file_digest(path) == true_digest(path)
    assert entries(cache) == [] and digest_cache.cached_digest(path) is None
    monkeypatch.setattr(digest_cache, "RACY_SECONDS", RACY)
    settle()
    digest_cache.file_digest(path)
    assert digest_cache.cached_digest(path) == true_digest(path)


def test_timestamps_in_the_future_are_not_recorded(tmp_path, cache):
    path = tmp_path / "future.bin"
    path.write_bytes(b"x" * 100)
    settle()
    later = time.time_ns() + 3600 * 10**9
    os.utime(path, ns=(later, later))
    settle()
    digest_cache.file_digest(path)
    assert entries(cache) == []


def test_file_changing_while_hashed_is_not_recorded(tmp_path, cache, monkeypatch):
    path = tmp_path / "moving.bin"
    path.write_bytes(b"a" * 1000)
    settle()
    real = storage.hash_file

    def hash_then_write(target):
        digest = real(target)
        with open(target, "r+b") as handle:
            handle.write(b"b")
        return digest

    monkeypatch.setattr(storage, "hash_file", hash_then_write)
    assert digest_cache.file_digest(path) == storage.Digest(hashlib.sha256(b"a" * 1000).hexdigest(), 1000)
    assert entries(cache) == [] and digest_cache.cached_digest(path) is None


def test_refresh_hashes_again_and_replaces_the_entry(recorded, cache, monkeypatch):
    # A stale digest under an unchanged stat stands for what the cache cannot
    # see: bytes changed on the medium without the file system knowing.
    (entry,) = entries(cache)
    document = json.loads(entry.read_bytes())
    document["sha256"] = "0" * 64
    entry.write_text(json.dumps(document))
    assert digest_cache.file_digest(recorded).sha256 == "0" * 64
    calls = count_hashing(monkeypatch)
    assert digest_cache.file_digest(recorded, refresh=True) == true_digest(recorded)
    assert len(calls) == 1
    assert digest_cache.cached_digest(recorded) == true_digest(recorded)


def test_errors_of_the_payload_are_raised_as_by_hash_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        digest_cache.file_digest(tmp_path / "missing.bin")
    with pytest.raises(IsADirectoryError):
        digest_cache.file_digest(tmp_path)
    assert digest_cache.cached_digest(tmp_path / "missing.bin") is None


# Every kind of change is a miss


def test_in_place_write_of_the_same_size_with_restored_mtime_is_a_miss(recorded):
    before = os.stat(recorded)
    with open(recorded, "r+b") as handle:
        handle.write(b"b")
    restore_times(recorded, before)
    after = os.stat(recorded)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns
    assert digest_cache.cached_digest(recorded) is None
    assert digest_cache.file_digest(recorded) == true_digest(recorded)


def test_replacement_by_rename_is_a_miss(recorded, tmp_path):
    before = os.stat(recorded)
    other = tmp_path / "other.bin"
    other.write_bytes(b"c" * 1000)
    restore_times(other, before)
    os.replace(other, recorded)
    assert digest_cache.cached_digest(recorded) is None
    assert digest_cache.file_digest(recorded) == true_digest(recorded)


@pytest.mark.parametrize("size", [999, 1001], ids=["truncated", "extended"])
def test_truncated_or_extended_is_a_miss(recorded, size):
    before = os.stat(recorded)
    os.truncate(recorded, size)
    restore_times(recorded, before)
    assert digest_cache.cached_digest(recorded) is None
    assert digest_cache.file_digest(recorded) == true_digest(recorded)


def test_chmod_or_touch_is_a_miss(recorded):
    os.chmod(recorded, 0o600)
    assert digest_cache.cached_digest(recorded) is None
    settle()
    digest_cache.file_digest(recorded)
    assert digest_cache.cached_digest(recorded) == true_digest(recorded)
    restore_times(recorded, os.stat(recorded))
    assert digest_cache.cached_digest(recorded) is None


# Switched off, untrusted, damaged or unwritable caches


@pytest.mark.parametrize("value", ["0", "off", "false", "OFF", " False "])
def test_switch_disables_reading_and_writing(recorded, cache, tmp_path, monkeypatch, value):
    monkeypatch.setenv(digest_cache.SWITCH_VARIABLE, value)
    assert digest_cache.cache_directory() is None
    assert digest_cache.cached_digest(recorded) is None
    calls = count_hashing(monkeypatch)
    assert digest_cache.file_digest(recorded) == true_digest(recorded)
    assert len(calls) == 1
    other = tmp_path / "other.bin"
    other.write_bytes(b"o" * 100)
    settle()
    digest_cache.file_digest(other)
    assert len(entries(cache)) == 1


@pytest.mark.parametrize("mode", [0o777, 0o720, 0o702])
def test_directory_writable_by_others_is_ignored(recorded, cache, tmp_path, mode):
    os.chmod(cache, mode)
    assert digest_cache.cached_digest(recorded) is None
    other = tmp_path / "other.bin"
    other.write_bytes(b"o" * 100)
    settle()
    assert digest_cache.file_digest(other) == true_digest(other)
    assert len(entries(cache)) == 1, "nothing is recorded in an untrusted directory"


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_directory_owned_by_someone_else_is_ignored(recorded, cache):
    os.chown(cache, 54321, -1)
    assert digest_cache.cached_digest(recorded) is None


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_entry_owned_by_someone_else_is_ignored(recorded, cache):
    (entry,) = entries(cache)
    os.chown(entry, 54321, -1)
    assert digest_cache.cached_digest(recorded) is None


def test_entry_writable_by_others_or_a_symlink_is_ignored(recorded, cache, tmp_path):
    (entry,) = entries(cache)
    os.chmod(entry, 0o666)
    assert digest_cache.cached_digest(recorded) is None
    os.chmod(entry, 0o644)
    assert digest_cache.cached_digest(recorded) == true_digest(recorded)
    moved = tmp_path / "moved.json"
    os.replace(entry, moved)
    entry.symlink_to(moved)
    assert digest_cache.cached_digest(recorded) is None


def damage(document: dict, how: str) -> bytes:
    if how == "not json":
        return b"{not json"
    if how == "not ascii":
        return b"\xff\xfe" + json.dumps(document).encode()
    if how == "empty":
        return b""
    if how == "too large":
        return json.dumps({**document, "padding": "x" * 20000}).encode()
    if how == "a list":
        return json.dumps(list(document.values())).encode()
    if how == "deeply nested":
        return b"[" * 10000 + b"]" * 10000
    document = dict(document)
    if how == "missing field":
        del document["ctime_ns"]
    elif how == "extra field":
        document["comment"] = "hello"
    elif how == "ino as text":
        document["ino"] = str(document["ino"])
    elif how == "size as float":
        document["size"] = float(document["size"])
    elif how == "dev as bool":
        document["dev"] = bool(document["dev"])
    elif how == "negative size":
        document["size"] = -1
    elif how == "short hash":
        document["sha256"] = document["sha256"][:-1]
    elif how == "uppercase hash":
        document["sha256"] = document["sha256"].upper()
    elif how == "hash as number":
        document["sha256"] = 7
    elif how == "other path":
        document["path"] = document["path"] + ".other"
    elif how == "recorded too soon":
        document["recorded_ns"] = max(document["mtime_ns"], document["ctime_ns"])
    return json.dumps(document).encode()


DAMAGES = [
    "not json", "not ascii", "empty", "too large", "a list", "deeply nested", "missing field", "extra field",
    "ino as text", "size as float", "dev as bool", "negative size", "short hash", "uppercase hash",
    "hash as number", "other path", "recorded too soon",
]  # fmt: skip


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_entry_is_a_miss_and_is_replaced(recorded, cache, how):
    (entry,) = entries(cache)
    entry.write_bytes(damage(json.loads(entry.read_bytes()), how))
    os.chmod(entry, 0o644)
    assert digest_cache.cached_digest(recorded) is None
    assert digest_cache.file_digest(recorded) == true_digest(recorded)
    assert digest_cache.cached_digest(recorded) == true_digest(recorded)


def test_entry_that_is_a_directory_is_a_miss(recorded, cache):
    (entry,) = entries(cache)
    entry.unlink()
    entry.mkdir(mode=0o700)
    assert digest_cache.cached_digest(recorded) is None
    assert digest_cache.file_digest(recorded) == true_digest(recorded)


def test_cache_directory_that_cannot_be_created_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv(digest_cache.CACHE_DIR_VARIABLE, str(blocker / "digests"))
    path = tmp_path / "payload.bin"
    path.write_bytes(b"p" * 100)
    settle()
    assert digest_cache.file_digest(path) == true_digest(path)
    assert digest_cache.cached_digest(path) is None


def test_failing_write_of_an_entry_is_skipped(tmp_path, cache, monkeypatch):
    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "atomic_write", full_disk)
    path = tmp_path / "payload.bin"
    path.write_bytes(b"p" * 100)
    settle()
    assert digest_cache.file_digest(path) == true_digest(path)
    assert entries(cache) == []


def test_read_only_cache_directory_is_no_error(tmp_path, cache):
    os.makedirs(cache, mode=0o700)
    os.chmod(cache, 0o500)
    try:
        path = tmp_path / "payload.bin"
        path.write_bytes(b"p" * 100)
        settle()
        assert digest_cache.file_digest(path) == true_digest(path)
        # Root may write anyway; anyone else records nothing.
        assert digest_cache.cached_digest(path) in (None, true_digest(path))
    finally:
        os.chmod(cache, 0o700)


# Location


def test_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(digest_cache.CACHE_DIR_VARIABLE, str(tmp_path / "mine"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert digest_cache.cache_directory() == tmp_path / "mine"
    monkeypatch.delenv(digest_cache.CACHE_DIR_VARIABLE)
    assert digest_cache.cache_directory() == tmp_path / "xdg" / "nnsave" / "digests"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert digest_cache.cache_directory() == tmp_path / "home" / ".cache" / "nnsave" / "digests"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert digest_cache.cache_directory() == tmp_path / "home" / ".cache" / "nnsave" / "digests"


# Concurrency


def test_threads_recording_the_same_entry_race_harmlessly(tmp_path, cache):
    path = tmp_path / "shared.bin"
    path.write_bytes(os.urandom(1 << 16))
    settle()
    results, errors = [], []

    def work():
        try:
            for _ in range(10):
                results.append(digest_cache.file_digest(path, refresh=True))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and set(results) == {true_digest(path)}
    assert [entry.name.endswith(".json") for entry in entries(cache)] == [True]
    assert digest_cache.cached_digest(path) == true_digest(path)


def test_processes_recording_the_same_entry_race_harmlessly(tmp_path, cache):
    path = tmp_path / "shared.bin"
    path.write_bytes(os.urandom(1 << 16))
    settle()
    script = (
        "import sys\n"
        "from nnsave import digest_cache\n"
        "digest_cache.MIN_CACHED_BYTES = 1\n"
        f"digest_cache.RACY_SECONDS = {RACY}\n"
        "for _ in range(30):\n"
        "    print(digest_cache.file_digest(sys.argv[1], refresh=True).sha256)\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=60)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert set("".join(outputs).split()) == {true_digest(path).sha256}
    assert len(entries(cache)) == 1
    assert digest_cache.cached_digest(path) == true_digest(path)


# The property: whatever happens to the file, a cached digest is its true digest


SIZE = 64
operations = st.one_of(
    st.tuples(st.just("write"), st.binary(min_size=SIZE, max_size=SIZE)),
    st.tuples(st.just("rename"), st.binary(min_size=SIZE, max_size=SIZE)),
    st.tuples(st.just("chmod"), st.sampled_from([0o600, 0o640, 0o644])),
    st.tuples(st.just("touch"), st.none()),
    st.tuples(st.just("wait"), st.none()),
    st.tuples(st.just("load"), st.none()),
)


def apply(path: Path, operation: str, argument) -> None:
    """Change the file as an adversary would: same size, and the old atime and mtime put back."""
    before = os.stat(path)
    if operation == "write":
        with open(path, "r+b") as handle:
            handle.write(argument)
    elif operation == "rename":
        replacement = path.with_name("replacement.bin")
        replacement.write_bytes(argument)
        restore_times(replacement, before)
        os.replace(replacement, path)
    elif operation == "chmod":
        os.chmod(path, argument)
    if operation in ("write", "chmod", "touch"):
        restore_times(path, before)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.binary(min_size=SIZE, max_size=SIZE), steps=st.lists(operations, min_size=1, max_size=12))
def test_cached_digest_is_never_a_stale_digest(cache, initial, steps):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "payload.bin"
        path.write_bytes(initial)
        for operation, argument in steps:
            if operation == "wait":
                settle()
                assert digest_cache.file_digest(path) == true_digest(path)
                assert digest_cache.cached_digest(path) == true_digest(path), "a settled file is recorded"
            elif operation == "load":
                assert digest_cache.file_digest(path) == true_digest(path)
            else:
                apply(path, operation, argument)
            assert digest_cache.cached_digest(path) in (None, true_digest(path))


def test_docstring_examples():
    results = doctest.testmod(digest_cache, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0 and results.failed == 0


def test_no_entry_is_published_into_the_payloads_own_directory(tmp_path, monkeypatch):
    # A reader holds the payload directory's lock while it hashes; publishing
    # an entry there would wait for that lock, so nothing is recorded.
    monkeypatch.setattr(digest_cache, "MIN_CACHED_BYTES", 1)
    monkeypatch.setattr(digest_cache, "RACY_SECONDS", 0.0)
    payload = tmp_path / "models" / "weights.bin"
    payload.parent.mkdir()
    payload.write_bytes(b"abc")
    monkeypatch.setenv("NNSAVE_CACHE_DIR", str(payload.parent))
    digest_cache.file_digest(payload)
    assert os.listdir(payload.parent) == ["weights.bin"]
    monkeypatch.setenv("NNSAVE_CACHE_DIR", str(tmp_path / "elsewhere"))
    digest_cache.file_digest(payload)
    assert digest_cache.cached_digest(payload) is not None
