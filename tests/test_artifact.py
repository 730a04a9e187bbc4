"""A payload and its manifest as one unit: written together, checked together, recovered together."""

from __future__ import annotations

import json
import os
import time

import pytest

from nnsave import artifact, keys, storage
from nnsave.errors import Problem, TargetExistsError
from nnsave.hashing import hash_buffer
from nnsave.manifest import build_manifest, manifest_path
from nnsave.trust import Integrity


def _describe(digest):
    return build_manifest(
        format_name="joblib", digest=digest, class_path="builtins.bytes", versions={},
        metadata={}, expects={}, nnsave_version="0.2.0",
    )


def _save(target, data, **options):
    artifact.write_pair(
        target,
        lambda pending: pending.write_bytes(target, data),
        _describe,
        overwrite=options.get("overwrite", True),
        algorithms=("blake3",),
    )


def _check(path, **options):
    with artifact.checked_pair(path, format_name="joblib", **options) as check:
        return check.integrity, check.problem, check.detail, check.rolled_forward


def _visible(directory):
    return sorted(n for n in os.listdir(directory) if n != storage.LOCK_NAME)


def test_a_pair_is_written_together_and_checks_intact(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"payload")
    assert _visible(tmp_path) == ["m.joblib", "m.joblib.nnsave.json"]
    assert _check(target) == (Integrity.INTACT, None, None, False)


def test_a_failing_payload_keeps_the_previous_pair(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"old")

    def broken(pending):
        with pending.stream(target) as stream:
            stream.write(b"half")
            raise RuntimeError("serialiser failed")

    with pytest.raises(RuntimeError):
        artifact.write_pair(target, broken, _describe, overwrite=True, algorithms=("blake3",))
    assert target.read_bytes() == b"old"
    assert _check(target)[0] is Integrity.INTACT
    assert _visible(tmp_path) == ["m.joblib", "m.joblib.nnsave.json"]


def test_overwrite_false_refuses_an_existing_target(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"one")
    with pytest.raises(TargetExistsError, match="overwrite=False"):
        _save(target, b"two", overwrite=False)
    assert target.read_bytes() == b"one"


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: p.write_bytes(p.read_bytes()[:-2]), Problem.TRUNCATED),
        (lambda p: p.write_bytes(p.read_bytes() + b"xx"), Problem.EXTENDED),
        (lambda p: p.write_bytes(b"X" + p.read_bytes()[1:]), Problem.CHANGED),
    ],
    ids=["truncated", "extended", "changed"],
)
def test_mismatches_are_named_for_what_they_are(tmp_path, damage, problem):
    target = tmp_path / "m.joblib"
    _save(target, b"the payload bytes")
    before = os.stat(manifest_path(target))
    damage(target)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))  # bit rot keeps the mtime
    integrity, found, detail, _ = _check(target)
    assert integrity is Integrity.MISMATCH and found is problem
    assert str(target) in detail and "do not use it" in detail


def test_a_payload_rewritten_after_its_manifest_is_a_stale_manifest(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"saved by nnsave")
    later = time.time() + 5
    target.write_bytes(b"saved again by model.save")
    os.utime(target, (later, later))
    integrity, problem, detail, _ = _check(target)
    assert problem is Problem.STALE_MANIFEST
    assert "stale" in detail and "save it again with nnsave.save" in detail


def test_a_manifest_of_another_format_is_a_mismatch(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"x")
    document = json.loads(manifest_path(target).read_text())
    document["format"] = "keras"
    manifest_path(target).write_text(json.dumps(document))
    assert _check(target)[1] is Problem.OTHER_FORMAT


@pytest.mark.parametrize("how", ["garbage", "fifo", "dev-zero", "huge"])
def test_a_damaged_or_special_manifest_is_reported_not_hung_on(tmp_path, how):
    target = tmp_path / "m.joblib"
    _save(target, b"x")
    location = manifest_path(target)
    location.unlink()
    if how == "garbage":
        location.write_bytes(b"\x00\x01")
    elif how == "fifo":
        os.mkfifo(location)
    elif how == "dev-zero":
        location.symlink_to("/dev/zero")
    else:
        location.write_bytes(b" " * (2 << 20))
    started = time.monotonic()
    integrity, problem, detail, _ = _check(target)
    assert time.monotonic() - started < 5
    assert integrity is Integrity.MISMATCH and problem is Problem.DAMAGED_MANIFEST
    assert str(location) in detail


def _stage_torn_save(target, new_payload):
    """What a save killed between its two renames leaves: new payload, old manifest, staged new manifest."""
    digest = hash_buffer(new_payload, ["blake3"])
    target.write_bytes(new_payload)
    staged = target.with_name(f".{manifest_path(target).name}{storage.TEMP_MARKER}dead")
    staged.write_text(_describe(digest).to_json())
    return staged


def test_a_save_killed_between_its_renames_is_rolled_forward(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"old")
    staged = _stage_torn_save(target, b"new")
    integrity, _, _, rolled = _check(target)
    assert integrity is Integrity.INTACT and rolled
    assert not staged.exists(), "the staged manifest was published"
    assert _check(target) == (Integrity.INTACT, None, None, False)


def test_a_first_save_killed_between_its_renames_is_rolled_forward(tmp_path):
    target = tmp_path / "m.joblib"
    _stage_torn_save(target, b"first")
    assert _check(target)[0] is Integrity.INTACT


def test_a_staged_manifest_that_does_not_describe_the_payload_is_ignored(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"old")
    staged = target.with_name(f".{manifest_path(target).name}{storage.TEMP_MARKER}evil")
    staged.write_text(_describe(hash_buffer(b"something else", ["blake3"])).to_json())
    target.write_bytes(b"tampered")
    assert _check(target)[0] is Integrity.MISMATCH


def test_a_rolled_forward_check_writes_nothing_when_it_cannot(tmp_path, monkeypatch):
    """On a read-only file system the pair is still read whole; publishing is skipped."""
    target = tmp_path / "m.joblib"
    _save(target, b"old")
    staged = _stage_torn_save(target, b"new")

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(storage.filelock.FileLock, "acquire", read_only)
    assert _check(target)[0] is Integrity.INTACT
    assert staged.exists()


def test_a_check_that_sees_a_writer_at_work_reads_again(tmp_path, monkeypatch):
    """A writer publishes a new pair between the reader's manifest read and its payload open."""
    target = tmp_path / "m.joblib"
    _save(target, b"version one")
    opened = []
    real_open = storage.open_regular

    def open_after_a_writer(path):
        if not opened:
            _save(target, b"version two")
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(storage, "open_regular", open_after_a_writer)
    assert _check(target)[0] is Integrity.INTACT
    assert len(opened) == 2, "the first, mixed read was retried"


def test_recover_needs_the_lock_and_keeps_only_what_completes_a_pair(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"old")
    staged = _stage_torn_save(target, b"new")
    orphan = tmp_path / f".other.joblib{storage.TEMP_MARKER}x"
    orphan.write_bytes(b"half a payload")
    with pytest.raises(RuntimeError):
        artifact.recover(tmp_path)
    with storage.directory_lock(tmp_path):
        handled = artifact.recover(tmp_path)
    assert set(handled) == {staged, orphan}
    assert _visible(tmp_path) == ["m.joblib", "m.joblib.nnsave.json"]
    assert _check(target)[0] is Integrity.INTACT


def test_remove_pair_removes_payload_then_manifest(tmp_path):
    target = tmp_path / "m.joblib"
    _save(target, b"x")
    artifact.remove_pair(target)
    assert _visible(tmp_path) == []


def test_a_signed_pair_survives_the_check_unchanged(tmp_path):
    key = keys.SigningKey(b"k" * 32, keys.KeySource.ARGUMENT)
    target = tmp_path / "m.joblib"
    artifact.write_pair(
        target, lambda p: p.write_bytes(target, b"x"), lambda d: keys.sign(_describe(d), key),
        overwrite=True, algorithms=("blake3",),
    )
    with artifact.checked_pair(target, format_name="joblib") as check:
        assert keys.check_signature(check.manifest, key) is keys.SignatureStatus.VALID
