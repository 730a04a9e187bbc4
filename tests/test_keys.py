"""Signing keys: where they come from, how they are kept, and what a signature check finds."""

import os
import stat

import pytest

from nnsave import keys
from nnsave.errors import KeyFileError
from nnsave.manifest import Manifest, Signature

_PLAIN = Manifest("joblib", 3, {"blake3": "0" * 64}, "0.2.0", "2026-01-01T00:00:00Z", {}, "builtins.list")


@pytest.fixture
def key_file(tmp_path, monkeypatch):
    location = tmp_path / "config" / "signing.key"
    monkeypatch.setenv(keys.KEY_FILE_VARIABLE, str(location))
    monkeypatch.delenv(keys.KEY_VARIABLE, raising=False)
    return location


def test_the_user_key_is_created_once_owner_only(key_file):
    assert keys.resolve_key(None, create=False) is None, "a load never creates a key"
    first = keys.resolve_key(None, create=True)
    assert first.source is keys.KeySource.USER_FILE and first.location == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret) == 32
    assert keys.resolve_key(None, create=True) == first, "the key is kept, not replaced"


def test_argument_beats_environment_beats_user_file(key_file, monkeypatch):
    keys.resolve_key(None, create=True)
    monkeypatch.setenv(keys.KEY_VARIABLE, "team secret")
    from_environment = keys.resolve_key(None, create=True)
    assert from_environment.source is keys.KeySource.ENVIRONMENT and from_environment.named_by_caller
    from_argument = keys.resolve_key(b"mine", create=True)
    assert from_argument.source is keys.KeySource.ARGUMENT and from_argument.secret == b"mine"


@pytest.mark.parametrize("bad", ["", b"", 3, ["k"]])
def test_a_key_must_be_non_empty_text_or_bytes(bad):
    with pytest.raises(TypeError):
        keys.resolve_key(bad, create=False)


def test_a_key_file_others_can_read_is_refused(key_file):
    keys.resolve_key(None, create=True)
    key_file.chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        keys.resolve_key(None, create=False)


def test_a_key_file_owned_by_someone_else_is_refused(key_file):
    keys.resolve_key(None, create=True)
    if os.geteuid() != 0:
        pytest.fail("this test needs root to hand the key file to another user")
    os.chown(key_file, 65534, 65534)
    with pytest.raises(KeyFileError, match="belongs to user id 65534"):
        keys.resolve_key(None, create=False)


def test_a_damaged_or_special_key_file_is_refused_clearly(key_file):
    key_file.parent.mkdir(parents=True)
    key_file.write_text("not hex at all")
    key_file.chmod(0o600)
    with pytest.raises(KeyFileError, match="not a key nnsave wrote"):
        keys.resolve_key(None, create=False)
    key_file.unlink()
    os.mkfifo(key_file, 0o600)
    with pytest.raises(KeyFileError):  # refused at once, not hung on the FIFO
        keys.resolve_key(None, create=False)


def test_signature_status_table():
    mine = keys.SigningKey(b"m" * 32, keys.KeySource.ARGUMENT)
    theirs = keys.SigningKey(b"t" * 32, keys.KeySource.ARGUMENT)
    signed = keys.sign(_PLAIN, mine)
    assert keys.check_signature(None, mine) is keys.SignatureStatus.NO_MANIFEST
    assert keys.check_signature(_PLAIN, mine) is keys.SignatureStatus.UNSIGNED
    assert keys.check_signature(signed, None) is keys.SignatureStatus.NO_KEY
    assert keys.check_signature(signed, mine) is keys.SignatureStatus.VALID
    assert keys.check_signature(signed, theirs) is keys.SignatureStatus.OTHER_KEY
    tampered = Manifest(**{**signed.__dict__, "metadata": {"epoch": 99}})
    assert keys.check_signature(tampered, mine) is keys.SignatureStatus.INVALID
    forged_id = signed.with_signature(Signature("0" * 64, mine.key_id))
    assert keys.check_signature(forged_id, mine) is keys.SignatureStatus.INVALID


def test_key_ids_differ_and_reveal_nothing_obvious():
    one, two = keys.SigningKey(b"a" * 32, keys.KeySource.ARGUMENT), keys.SigningKey(b"b" * 32, keys.KeySource.ARGUMENT)
    assert one.key_id != two.key_id and len(one.key_id) == 16
    assert one.secret.hex()[:16] != one.key_id
