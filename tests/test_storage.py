import errno
import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnsave import storage


def test_write_bytes_publishes_file_and_reports_digest(tmp_path):
    target = tmp_path / "blob.bin"
    with storage.atomic_write() as transaction:
        digest = transaction.write_bytes(target, b"hello")
        assert not target.exists(), "nothing may appear under the final name before commit"
    assert target.read_bytes() == b"hello"
    assert digest == storage.Digest(hashlib.sha256(b"hello").hexdigest(), 5)
    assert os.listdir(tmp_path) == ["blob.bin"]


def test_failure_keeps_previous_file_and_removes_staging(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with storage.atomic_write() as transaction:
            with transaction.stream(target) as stream:
                stream.write(b"new, half")
                raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["blob.bin"]


def test_disk_full_is_reported_with_the_file_name(tmp_path):
    target = tmp_path / "model.joblib"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as caught:
        with storage.atomic_write() as transaction:
            with transaction.stream(target):
                raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.errno == errno.ENOSPC
    assert "model.joblib" in str(caught.value) and "unchanged" in str(caught.value)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["model.joblib"]


def test_staging_path_keeps_suffix_and_is_hashed_on_commit(tmp_path):
    target = tmp_path / "m.keras"
    with storage.atomic_write() as transaction:
        staging = transaction.staging_path(target)
        assert staging.suffix == ".keras" and storage.is_temporary(staging)
        staging.write_bytes(b"zip bytes")
        digest = transaction.digest_of(target)
    assert digest.sha256 == hashlib.sha256(b"zip bytes").hexdigest()
    assert target.read_bytes() == b"zip bytes"


def test_digest_of_unknown_target_is_a_key_error(tmp_path):
    with pytest.raises(KeyError):
        with storage.atomic_write() as transaction:
            transaction.digest_of(tmp_path / "never-staged")


def test_hashing_writer_refuses_to_seek(tmp_path):
    with open(tmp_path / "f", "wb") as raw:
        writer = storage.HashingWriter(raw)
        writer.write(b"abc")
        assert writer.tell() == 3 and not writer.seekable()
        with pytest.raises(OSError):
            writer.seek(0)


_KIND = {"bytes": bytes, "bytearray": bytearray, "memoryview": lambda b: memoryview(bytearray(b))}


@settings(max_examples=25, deadline=None)
@given(
    writes=st.lists(
        st.tuples(
            st.sampled_from(sorted(_KIND)),
            st.integers(0, 3 << 20),
            st.integers(0, 255),
        ),
        max_size=7,
    )
)
def test_pipelined_hash_matches_and_ignores_reuse_of_buffers(tmp_path_factory, writes):
    """Large and small writes of every buffer type hash in order, and a
    caller reusing a mutable buffer right after write() cannot change the hash."""
    target = tmp_path_factory.mktemp("pipeline") / "payload"
    expected = hashlib.sha256()
    with storage.atomic_write() as transaction:
        with transaction.stream(target) as stream:
            for kind, size, fill in writes:
                data = bytes([fill]) * size
                expected.update(data)
                buffer = _KIND[kind](data)
                stream.write(buffer)
                if not isinstance(buffer, bytes):
                    memoryview(buffer).cast("B")[:] = b"\0" * size
    assert stream.digest.sha256 == expected.hexdigest()
    assert stream.digest == storage.hash_file(target)


def test_hashing_thread_stops_when_the_stream_fails(tmp_path):
    import threading

    target = tmp_path / "payload"
    with pytest.raises(RuntimeError, match="boom"):
        with storage.atomic_write() as transaction:
            with transaction.stream(target) as stream:
                stream.write(b"x" * (4 << 20))
                raise RuntimeError("boom")
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("nnsave-hash")]
    assert os.listdir(tmp_path) == []


def test_read_small_file_refuses_large_files(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b"x" * 11)
    assert storage.read_small_file(path, 11) == b"x" * 11
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        storage.read_small_file(path, 10)


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.binary(max_size=3000), max_size=8))
def test_streamed_digest_equals_file_digest(tmp_path_factory, chunks):
    target = tmp_path_factory.mktemp("hash") / "payload"
    with storage.atomic_write() as transaction:
        with transaction.stream(target) as stream:
            for chunk in chunks:
                stream.write(chunk)
    assert stream.digest == storage.hash_file(target)
    assert stream.digest.size == sum(map(len, chunks))


def test_stale_temporaries_skip_live_writers(tmp_path):
    target = tmp_path / "blob.bin"
    abandoned = tmp_path / f".blob.bin{storage.TEMP_MARKER}dead"
    abandoned.write_bytes(b"left by a killed process")
    with storage.atomic_write() as transaction:
        with transaction.stream(target) as stream:
            stream.write(b"in progress")
            stale = storage.stale_temporaries(tmp_path)
    assert stale == [(abandoned, target)]
    storage.remove_temporary(abandoned)
    assert sorted(os.listdir(tmp_path)) == ["blob.bin"]
    with pytest.raises(ValueError, match="not an nnsave staging file"):
        storage.remove_temporary(target)


def test_directory_lock_is_reentrant(tmp_path):
    with storage.directory_lock(tmp_path, shared=True):
        with storage.directory_lock(tmp_path):
            with storage.atomic_write() as transaction:
                transaction.write_bytes(tmp_path / "f", b"x")
    assert (tmp_path / "f").read_bytes() == b"x"


def test_directory_lock_excludes_other_threads_but_is_reentrant_in_one(tmp_path):
    import threading

    inside = threading.Event()
    release = threading.Event()
    order = []

    def holder():
        with storage.directory_lock(tmp_path):
            with storage.directory_lock(tmp_path):  # re-entrant within this thread
                inside.set()
                release.wait(5)
                order.append("holder leaves")

    def contender():
        inside.wait(5)
        with storage.directory_lock(tmp_path, shared=True):
            order.append("contender enters")

    threads = [threading.Thread(target=holder), threading.Thread(target=contender)]
    for thread in threads:
        thread.start()
    inside.wait(5)
    release_timer = threading.Timer(0.2, release.set)
    release_timer.start()
    for thread in threads:
        thread.join(10)
    assert order == ["holder leaves", "contender enters"]
