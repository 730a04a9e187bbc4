import datetime as dt
import importlib.metadata
import json
import sys

import pytest

from nnsave import IntegrityError
from nnsave.manifest import (
    MANIFEST_SUFFIX,
    build_manifest,
    check_metadata,
    installed_versions,
    manifest_path,
    parse_manifest,
    version_mismatches,
)


def _manifest(**overrides):
    fields = dict(
        format_name="joblib",
        sha256="a" * 64,
        size=10,
        class_path="builtins.dict",
        metadata={"epoch": 3},
        nnsave_version="0.1.0",
        now=dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    )
    fields.update(overrides)
    return build_manifest(**fields)


def test_manifest_sits_beside_the_payload(tmp_path):
    assert manifest_path(tmp_path / "model.keras") == tmp_path / ("model.keras" + MANIFEST_SUFFIX)
    assert MANIFEST_SUFFIX == ".nnsave.json"


def test_manifest_records_everything_the_issue_names():
    document = json.loads(_manifest().to_json())
    assert document["schema_version"] == 1
    assert document["format"] == "joblib"
    assert document["sha256"] == "a" * 64 and document["size"] == 10
    assert document["created_utc"] == "2026-01-02T03:04:05Z"
    assert set(document["versions"]) == {"python", "numpy", "tensorflow", "keras", "scikit-learn", "joblib", "skops"}
    assert document["class"] == "builtins.dict"
    assert document["metadata"] == {"epoch": 3}


def test_parse_is_the_inverse_of_build(tmp_path):
    manifest = _manifest()
    assert parse_manifest(manifest.to_json().encode(), source=tmp_path / "m") == manifest


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda d: b"{not json", "not valid JSON"),
        (lambda d: b"[1, 2]", "not a JSON object"),
        (lambda d: d.replace(b'"size": 10', b'"size": "10"'), "'size'"),
        (lambda d: d.replace(b'"a' + b"a" * 63, b'"Z' + b"a" * 63), "64 lowercase hex"),
        (lambda d: d.replace(b'"size": 10', b'"size": -1'), "negative"),
        (lambda d: d.replace(b'"schema_version": 1', b'"schema_version": 99'), "upgrade nnsave"),
        (lambda d: d.replace(b'"schema_version": 1', b'"schema_version": true'), "'schema_version'"),
        (lambda d: b"\xff\xfe", "not valid JSON"),
    ],
)
def test_damaged_manifests_raise_integrity_error(tmp_path, damage, reason):
    data = damage(_manifest().to_json().encode())
    with pytest.raises(IntegrityError, match=reason) as caught:
        parse_manifest(data, source=tmp_path / "x.joblib.nnsave.json")
    assert "x.joblib.nnsave.json" in str(caught.value)


def test_metadata_must_be_json(tmp_path):
    assert check_metadata(None) == {}
    assert check_metadata({"a": [1, 2.5, None]}) == {"a": [1, 2.5, None]}
    with pytest.raises(TypeError, match="JSON-serialisable"):
        check_metadata({"when": dt.date.today()})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        check_metadata({"score": float("nan")})
    with pytest.raises(TypeError, match="must be a dict"):
        check_metadata([1, 2])


def test_installed_versions_are_read_without_importing():
    versions = installed_versions()
    assert versions["python"].count(".") == 2
    assert versions["numpy"] is not None


@pytest.mark.parametrize(
    "saved, installed, depth, expected",
    [
        ("1.8.0", "1.9.1", 3, True),
        ("1.9.1", "1.9.1", 3, False),
        ("3.15.1", "3.2.0", 1, False),
        ("2.15.0", "3.15.1", 1, True),
        ("2.4.6", "2.4.6rc1", 3, False),
        ("1.6.0", None, 1, False),
    ],
)
def test_version_mismatch_depth(saved, installed, depth, expected):
    found = version_mismatches({"lib": saved}, {"lib": installed}, strictness={"lib": depth})
    assert bool(found) is expected
    if expected:
        assert found == [("lib", saved, installed)]


def test_imported_libraries_report_the_version_that_runs(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "sklearn", types.SimpleNamespace(__version__="9.9.9"))
    assert installed_versions()["scikit-learn"] == "9.9.9"
    monkeypatch.setitem(sys.modules, "sklearn", types.SimpleNamespace())  # no __version__
    assert installed_versions()["scikit-learn"] == importlib.metadata.version("scikit-learn")
