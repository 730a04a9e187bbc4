"""The digest cache answers only for the exact file version whose bytes it hashed."""

from __future__ import annotations

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
from nnsave.hashing import Digest, hash_buffer

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
    time.sleep(RACY + 0.02)


def true_digest(path: Path) -> Digest:
    return hash_buffer(path.read_bytes(), ["blake3"])


def digest(path: Path, *, refresh: bool = False) -> Digest:
    """What a load does: open once, look up by fstat, else hash through the descriptor."""
    with storage.open_regular(path) as handle:
        return digest_cache.digest_of(
            handle, "blake3", lambda: hash_buffer(handle.contents(), ["blake3"]), refresh=refresh
        )


def cached(path: Path) -> Digest | None:
    with storage.open_regular(path) as handle:
        return digest_cache.cached_digest(handle, "blake3")


def entries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name != storage.LOCK_NAME) if directory.exists() else []


@pytest.fixture
def recorded(tmp_path, cache):
    path = tmp_path / "payload.bin"
    path.write_bytes(b"a" * 1000)
    settle()
    assert digest(path) == true_digest(path)
    assert len(entries(cache)) == 1
    return path


def test_a_recorded_digest_is_returned_without_reading_the_file(recorded):
    expected = true_digest(recorded)
    with storage.open_regular(recorded) as handle:
        assert digest_cache.digest_of(handle, "blake3", lambda: pytest.fail("hashed again")) == expected


def test_an_entry_is_keyed_by_the_inode_and_holds_only_what_it_must(recorded, cache):
    (entry,) = entries(cache)
    status = os.stat(recorded)
    assert entry.name == f"{status.st_dev:x}-{status.st_ino:x}.json"
    document = json.loads(entry.read_bytes())
    assert set(document) == {"dev", "ino", "size", "mtime_ns", "ctime_ns", "recorded_ns", "algorithm", "digest"}
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700


def test_the_symlink_flip_cannot_poison_the_cache(tmp_path, cache):
    """Issue 11, attack 3: a link flipped between a genuine and an evil file of the same size."""
    genuine, evil, link = tmp_path / "genuine.bin", tmp_path / "evil.bin", tmp_path / "model.bin"
    genuine.write_bytes(b"G" * 4096)
    evil.write_bytes(b"E" * 4096)
    settle()
    stop = threading.Event()

    def flipper():
        while not stop.is_set():
            for target in (genuine, evil):
                staging = tmp_path / "flip"
                staging.symlink_to(target)
                os.replace(staging, link)

    thread = threading.Thread(target=flipper)
    link.symlink_to(genuine)
    thread.start()
    try:
        for _ in range(300):
            try:
                digest(link)
            except OSError:
                continue
    finally:
        stop.set()
        thread.join()
    assert cached(evil) in (None, true_digest(evil))
    assert cached(genuine) in (None, true_digest(genuine))


def test_files_others_can_write_are_never_looked_up_or_recorded(tmp_path, cache):
    path = tmp_path / "shared.bin"
    path.write_bytes(b"s" * 1000)
    path.chmod(0o666)
    settle()
    digest(path)
    assert entries(cache) == []


def test_a_file_hashed_right_after_it_was_written_is_not_recorded(tmp_path, cache):
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"f" * 1000)
    digest(path)
    assert entries(cache) == []


def test_a_file_changing_while_it_is_hashed_is_not_recorded(tmp_path, cache):
    path = tmp_path / "moving.bin"
    path.write_bytes(b"m" * 1000)
    settle()
    with storage.open_regular(path) as handle:

        def compute():
            with open(path, "r+b") as writer:
                writer.write(b"X")
            return hash_buffer(handle.contents(), ["blake3"])

        digest_cache.digest_of(handle, "blake3", compute)
    assert entries(cache) == []


def test_refresh_hashes_again(recorded):
    calls = []
    with storage.open_regular(recorded) as handle:
        digest_cache.digest_of(handle, "blake3", lambda: calls.append(1) or true_digest(recorded), refresh=True)
    assert calls == [1]


def test_an_entry_for_another_algorithm_is_a_miss(recorded):
    with storage.open_regular(recorded) as handle:
        assert digest_cache.cached_digest(handle, "sha256") is None


@pytest.mark.parametrize("value", ["0", "off", "FALSE", "no"])
def test_the_switch_turns_the_cache_off(recorded, monkeypatch, value):
    monkeypatch.setenv(digest_cache.SWITCH_VARIABLE, value)
    assert digest_cache.cache_directory() is None
    assert cached(recorded) is None


@pytest.mark.parametrize("mode", [0o770, 0o777])
def test_a_cache_directory_others_can_write_is_ignored(recorded, cache, mode):
    cache.chmod(mode)
    assert cached(recorded) is None


def test_a_cache_directory_owned_by_someone_else_is_ignored(recorded, cache):
    os.chown(cache, 65534, 65534)
    assert cached(recorded) is None


@pytest.mark.parametrize("how", ["owner", "mode", "symlink", "garbage", "deep", "types", "directory"])
def test_a_forged_or_damaged_entry_is_a_miss(recorded, cache, tmp_path, how):
    (entry,) = entries(cache)
    document = json.loads(entry.read_bytes())
    if how == "owner":
        os.chown(entry, 65534, 65534)
    elif how == "mode":
        entry.chmod(0o666)
    elif how == "symlink":
        forged = tmp_path / "forged.json"
        forged.write_text(json.dumps(document))
        entry.unlink()
        entry.symlink_to(forged)
    elif how == "garbage":
        entry.write_bytes(b"\x00not json")
    elif how == "deep":
        entry.write_text("[" * 10_000 + "]" * 10_000)
    elif how == "types":
        entry.write_text(json.dumps({**document, "size": True}))
    elif how == "directory":
        entry.unlink()
        entry.mkdir()
    assert cached(recorded) is None


def test_a_cache_that_cannot_be_written_is_no_error(tmp_path, monkeypatch):
    monkeypatch.setenv(digest_cache.CACHE_DIR_VARIABLE, "/proc/nnsave-cannot-exist")
    path = tmp_path / "p.bin"
    path.write_bytes(b"p" * 1000)
    settle()
    assert digest(path) == true_digest(path)


def test_processes_recording_the_same_entry_race_harmlessly(tmp_path, cache):
    path = tmp_path / "shared.bin"
    path.write_bytes(os.urandom(1 << 16))
    settle()
    script = (
        "import sys\n"
        "from nnsave import digest_cache, storage\n"
        "from nnsave.hashing import hash_buffer\n"
        "digest_cache.MIN_CACHED_BYTES = 1\n"
        f"digest_cache.RACY_SECONDS = {RACY}\n"
        "for _ in range(30):\n"
        "    with storage.open_regular(sys.argv[1]) as h:\n"
        "        d = digest_cache.digest_of(h, 'blake3', lambda: hash_buffer(h.contents(), ['blake3']), refresh=True)\n"
        "    print(d.values['blake3'])\n"
    )
    workers = [
        subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    assert set("".join(outputs).split()) == {true_digest(path).values["blake3"]}
    assert len(entries(cache)) == 1


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


def _apply(path: Path, operation: str, argument) -> None:
    """Change the file as an adversary would: same size, and the old times put back."""
    before = os.stat(path)
    if operation == "write":
        with open(path, "r+b") as handle:
            handle.write(argument)
    elif operation == "rename":
        replacement = path.with_name("replacement.bin")
        replacement.write_bytes(argument)
        os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(replacement, path)
    elif operation == "chmod":
        os.chmod(path, argument)
    if operation in ("write", "chmod", "touch"):
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.binary(min_size=SIZE, max_size=SIZE), steps=st.lists(operations, min_size=1, max_size=12))
def test_a_cached_digest_is_never_a_stale_digest(cache, initial, steps):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "payload.bin"
        path.write_bytes(initial)
        for operation, argument in steps:
            if operation == "wait":
                settle()
                assert digest(path) == true_digest(path)
                assert cached(path) == true_digest(path), "a settled file is recorded"
            elif operation == "load":
                assert digest(path) == true_digest(path)
            else:
                _apply(path, operation, argument)
            assert cached(path) in (None, true_digest(path))
