"""Atomic staged writes under the writers' lock; reads through one descriptor that cannot hang."""

import contextlib
import errno
import os
import stat
import threading
import time

import pytest

from nnsave import storage
from nnsave.errors import DirectoryGivenError, FileMissingError, LockTimeoutError, NotAFileError
from nnsave.hashing import hash_buffer


def _visible(directory):
    return sorted(name for name in os.listdir(directory) if name != storage.LOCK_NAME)


def test_write_bytes_publishes_only_at_commit_and_reports_the_digest(tmp_path):
    target = tmp_path / "blob.bin"
    with storage.transaction(tmp_path) as pending:
        digest = pending.write_bytes(target, b"hello")
        assert not target.exists(), "nothing may appear under the final name before commit"
    assert target.read_bytes() == b"hello"
    assert digest == hash_buffer(b"hello", ["blake3"])
    assert _visible(tmp_path) == ["blob.bin"]


def test_failure_keeps_the_previous_file_and_removes_staging(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with storage.transaction(tmp_path) as pending:
            with pending.stream(target) as stream:
                stream.write(b"new, half")
                raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert _visible(tmp_path) == ["blob.bin"]


def test_disk_full_names_the_file_and_says_nothing_was_replaced(tmp_path):
    target = tmp_path / "model.joblib"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as caught:
        with storage.transaction(tmp_path) as pending:
            with pending.stream(target):
                raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.errno == errno.ENOSPC
    assert "model.joblib" in str(caught.value) and "unchanged" in str(caught.value)
    assert target.read_bytes() == b"old"


def test_staging_path_keeps_the_suffix_and_is_hashed_through_nnsaves_descriptor(tmp_path):
    target = tmp_path / "m.keras"
    with storage.transaction(tmp_path) as pending:
        staging = pending.staging_path(target)
        assert staging.suffix == ".keras" and storage.is_temporary(staging)
        with open(staging, "r+b") as writer:  # a library that insists on a name writes in place
            writer.write(b"zip bytes")
        digest = pending.digest_of(target)
    assert digest == hash_buffer(b"zip bytes", ["blake3"])
    assert target.read_bytes() == b"zip bytes"


def test_a_transaction_writes_only_in_its_own_directory(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not in this transaction's directory"):
        with storage.transaction(tmp_path) as pending:
            pending.write_bytes(tmp_path / "other" / "x", b"1")


def test_the_writers_lock_is_held_for_the_whole_transaction(tmp_path):
    """Staging happens under the lock, so anything staged that a lock holder finds is stale."""
    inside = threading.Event()
    release = threading.Event()
    seen = []

    def writer():
        with storage.transaction(tmp_path) as pending:
            with pending.stream(tmp_path / "a.bin") as stream:
                stream.write(b"x")
                inside.set()
                release.wait(5)

    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait(5)

    def cleaner():
        with storage.directory_lock(tmp_path):
            seen.append(storage.stale_temporaries(tmp_path))

    cleaning = threading.Thread(target=cleaner)
    cleaning.start()
    time.sleep(0.3)
    assert not seen, "the cleaner must wait while a writer stages"
    release.set()
    thread.join(5)
    cleaning.join(5)
    assert seen == [[]], "after the writer committed, nothing is left to clean"


def test_directory_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    order = []
    with storage.directory_lock(tmp_path):
        with storage.directory_lock(tmp_path):  # re-entered, no deadlock
            assert storage.holds_lock(tmp_path)

        def other():
            with storage.directory_lock(tmp_path):
                order.append("other")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.2)
        order.append("first")
    thread.join(5)
    assert order == ["first", "other"]
    assert not storage.holds_lock(tmp_path)


@contextlib.contextmanager
def _held_by_another_thread(directory):
    """The directory's lock, held by another thread until the block ends."""
    taken, done = threading.Event(), threading.Event()

    def holder():
        with storage.directory_lock(directory):
            taken.set()
            done.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait(5)
    try:
        yield
    finally:
        done.set()
        thread.join(5)


def test_a_lock_that_is_only_tried_does_not_wait(tmp_path):
    with _held_by_another_thread(tmp_path):
        started = time.monotonic()
        with storage.directory_lock(tmp_path, wait=False) as held:
            assert held is False
        assert time.monotonic() - started < 1


def test_lock_timeout_names_the_lock_file(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "LOCK_TIMEOUT_SECONDS", 0.2)
    with _held_by_another_thread(tmp_path), pytest.raises(LockTimeoutError, match=storage.LOCK_NAME):
        with storage.directory_lock(tmp_path):
            pass


def test_stale_temporaries_need_the_lock_and_list_only_regular_staging_files(tmp_path):
    with pytest.raises(RuntimeError, match="lock must be held"):
        storage.stale_temporaries(tmp_path)
    stale = tmp_path / f".m.keras{storage.TEMP_MARKER}abc"
    stale.write_bytes(b"left by a killed save")
    (tmp_path / f".x{storage.TEMP_MARKER}link").symlink_to(tmp_path / "elsewhere")
    with storage.directory_lock(tmp_path):
        assert storage.stale_temporaries(tmp_path) == [(stale, tmp_path / "m.keras")]


def test_open_regular_refuses_fifos_and_devices_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(NotAFileError, match="FIFO"):
        storage.open_regular(fifo)
    with pytest.raises(NotAFileError, match="character device"):
        storage.open_regular("/dev/zero")
    link = tmp_path / "zero"
    link.symlink_to("/dev/zero")
    with pytest.raises(NotAFileError):
        storage.open_regular(link)
    assert time.monotonic() - started < 2


def test_open_regular_names_missing_files_and_directories(tmp_path):
    with pytest.raises(FileMissingError, match="No such file"):
        storage.open_regular(tmp_path / "absent")
    with pytest.raises(DirectoryGivenError):
        storage.open_regular(tmp_path)


def test_reads_go_through_the_descriptor_not_the_path(tmp_path):
    """Swapping the file after it was opened changes nothing for the reader."""
    path = tmp_path / "data.bin"
    path.write_bytes(b"A" * (2 << 20))
    with storage.open_regular(path) as handle:
        (tmp_path / "evil.bin").write_bytes(b"B" * (2 << 20))
        os.replace(tmp_path / "evil.bin", path)
        assert handle.changed_since_opened()
        assert bytes(handle.contents()[:4]) == b"AAAA"
        assert handle.read_all() == b"A" * (2 << 20)
        assert handle.head(2) == b"AA"
        reopened = handle.descriptor_path()
        with open(reopened, "rb") as again:
            assert again.read(4) == b"AAAA", "the descriptor path reopens the verified file"


def test_files_others_can_write_are_copied_not_mapped(tmp_path):
    path = tmp_path / "shared.bin"
    path.write_bytes(b"C" * (2 << 20))
    path.chmod(0o666)
    with storage.open_regular(path) as handle:
        assert storage.writable_by_others(handle.status)
        view = handle.contents()
        with open(path, "r+b") as other:  # another user writes in place after the check
            other.write(b"D" * 10)
        assert bytes(view[:4]) == b"CCCC", "a private copy cannot change under the reader"
        view.release()


def test_read_small_file_refuses_large_files(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 100)
    assert storage.read_small_file(path, 100) == b"x" * 100
    with pytest.raises(ValueError, match="more than"):
        storage.read_small_file(path, 99)


def test_remove_files_needs_the_lock_and_tolerates_missing_files(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    with pytest.raises(RuntimeError):
        storage.remove_files([tmp_path / "a"])
    with storage.directory_lock(tmp_path):
        storage.remove_files([tmp_path / "a", tmp_path / "never"])
    assert _visible(tmp_path) == []


def test_create_private_file_never_replaces_and_is_owner_only(tmp_path):
    path = tmp_path / "keys" / "k"
    assert storage.create_private_file(path, b"first")
    assert not storage.create_private_file(path, b"second")
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert sorted(os.listdir(path.parent)) == ["k"]
