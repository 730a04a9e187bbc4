"""Manifests: pure build, parse and compare; schema 1 still read; hostile JSON refused."""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnsave import keys
from nnsave.errors import IntegrityError, InvalidArgumentError, Problem
from nnsave.hashing import hash_buffer
from nnsave.manifest import (
    MANIFEST_SUFFIX,
    build_manifest,
    check_metadata,
    installed_versions,
    manifest_path,
    parse_manifest,
    payload_path,
    version_mismatches,
)

SOURCE = Path("m.joblib.nnsave.json")


def _manifest(**changes):
    fields = dict(
        format_name="joblib",
        digest=hash_buffer(b"payload", ["blake3", "sha256"]),
        class_path="builtins.dict",
        versions={"python": "3.11.7", "numpy": "2.4.6"},
        metadata={"epoch": 3},
        expects={"n_features_in": 4},
        nnsave_version="0.2.0",
    )
    fields.update(changes)
    return build_manifest(**fields)


def test_manifest_sits_beside_the_payload():
    assert manifest_path(Path("a/m.keras")) == Path("a/m.keras" + MANIFEST_SUFFIX)
    assert payload_path(manifest_path(Path("a/m.keras"))) == Path("a/m.keras")


def test_parse_is_the_inverse_of_to_json_signed_or_not():
    manifest = _manifest()
    assert parse_manifest(manifest.to_json().encode(), source=SOURCE) == manifest
    key = keys.SigningKey(b"k" * 32, keys.KeySource.ARGUMENT)
    signed = keys.sign(manifest, key)
    assert parse_manifest(signed.to_json().encode(), source=SOURCE) == signed


def test_a_schema_1_manifest_and_its_signature_are_still_read():
    key = keys.SigningKey(b"k" * 32, keys.KeySource.ARGUMENT)
    document = {
        "schema_version": 1, "format": "joblib", "nnsave_version": "0.1.0", "sha256": "a" * 64,
        "size": 7, "created_utc": "2026-01-01T00:00:00Z", "versions": {"numpy": "2.4.6"},
        "class": "builtins.list", "metadata": {},
    }
    # How nnsave 0.1 signed: HMAC-SHA256 of every field but the signature, sorted and compact.
    document["signature"] = keys.signature_of(
        json.dumps(document, sort_keys=True, separators=(",", ":")).encode(), key
    )
    parsed = parse_manifest(json.dumps(document).encode(), source=SOURCE)
    assert parsed.digests == {"sha256": "a" * 64} and parsed.schema_version == 1
    assert keys.check_signature(parsed, key) is keys.SignatureStatus.VALID


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"schema_version": 9}, "newer than this nnsave"),
        ({"schema_version": 0}, "does not exist"),
        ({"size": -1}, "negative"),
        ({"size": "7"}, "'size'"),
        ({"digests": {"md5": "x"}}, "no digest nnsave knows"),
        ({"digests": {"blake3": "XYZ"}}, "not 64 lower-case hex"),
        ({"digests": []}, "'digests'"),
        ({"versions": {"numpy": 2}}, "not a string"),
        ({"metadata": []}, "'metadata'"),
        ({"class": ["a", "list"]}, "'class'"),
        ({"signature": {"algorithm": "md5", "value": "0" * 64}}, "hmac-sha256"),
        ({"signature": "0" * 64}, "'signature'"),
        ({"expects": "x"}, "'expects'"),
    ],
)
def test_damaged_manifests_raise_integrity_error_naming_the_file(change, reason):
    document = json.loads(_manifest().to_json())
    document.update(change)
    with pytest.raises(IntegrityError, match=reason) as caught:
        parse_manifest(json.dumps(document).encode(), source=SOURCE)
    assert str(SOURCE) in str(caught.value) and caught.value.problem is Problem.DAMAGED_MANIFEST


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_bytes_parse_or_raise_integrity_error(data):
    try:
        parse_manifest(data, source=SOURCE)
    except IntegrityError:
        pass


def test_metadata_must_be_json_with_string_keys():
    assert check_metadata({"a": [1, 2.5, None, True]}, Path("m")) == {"a": [1, 2.5, None, True]}
    for bad, words in [
        ({1: "x"}, "key 1 of type int"),
        ({"a": {"b": {2: "x"}}}, "metadata['a']['b']"),
        ({"a": float("nan")}, "no NaN"),
        ({"a": object()}, "JSON-serialisable"),
        ([("a", 1)], "must be a dict"),
    ]:
        with pytest.raises(InvalidArgumentError, match=words.replace("[", r"\[").replace("]", r"\]")):
            check_metadata(bad, Path("m"))


def test_installed_versions_name_python_and_only_the_libraries_asked_for():
    versions = installed_versions(["numpy", "no-such-library"])
    assert set(versions) == {"python", "numpy", "no-such-library"}
    assert versions["no-such-library"] is None


def test_version_mismatch_depth():
    saved = {"keras": "3.1.0", "scikit-learn": "1.9.0"}
    now = {"keras": "3.15.1", "scikit-learn": "1.9.1"}
    assert version_mismatches(saved, now, strictness={"keras": 1}) == []
    assert version_mismatches(saved, now, strictness={"scikit-learn": 3}) == [("scikit-learn", "1.9.0", "1.9.1")]
    assert version_mismatches({"keras": None}, now, strictness={"keras": 1}) == []
