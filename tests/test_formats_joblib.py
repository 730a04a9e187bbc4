"""The .joblib format: its arguments, its manifests, and hostile or damaged pickles."""

from __future__ import annotations

import hashlib
import json
import pickle
import sys
import types
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.multioutput import MultiOutputClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import nnsave
from nnsave import (
    FormatError,
    IntegrityError,
    InvalidArgumentError,
    MissingDependencyError,
    NNSaveError,
    UnknownClassError,
    UntrustedFileError,
    UnverifiedFileWarning,
)
from nnsave.formats._python import first_difference, missing_reference, read_failure
from nnsave.manifest import build_manifest, manifest_path

X = np.random.default_rng(0).random((40, 4))
y = np.arange(40) % 3


def fitted_model():
    return LogisticRegression().fit(X, y)


def saved_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# ------------------------------------------------------------------ compress


@pytest.mark.parametrize(
    "compress, compression",
    [
        (0, None),
        (3, "zlib"),
        (9, "zlib"),
        ("zlib", "zlib"),
        ("gzip", "gzip"),
        ("bz2", "bz2"),
        ("lzma", "lzma"),
        ("xz", "xz"),
        (("gzip", 1), "gzip"),
        (("xz", 9), "xz"),
    ],
)
def test_every_compression_applies(tmp_path, compress, compression):
    data = {"w": np.zeros(5000)}
    path = nnsave.save(data, tmp_path / "w.joblib", compress=compress)
    assert nnsave.inspect(path).details.get("compression") == compression
    assert first_difference(data, nnsave.load(path)) is None
    if compression is not None:
        assert path.stat().st_size < 5000


@pytest.mark.parametrize(
    "compress",
    [10, -1, True, False, 3.0, "fast", "ZLIB", ("zlib", 10), ("nope", 3), ("zlib",), ["zlib", 3], (3, "zlib")],
)
def test_a_compression_joblib_does_not_take_is_refused_naming_argument_value_and_file(tmp_path, compress):
    target = tmp_path / "w.joblib"
    with pytest.raises(InvalidArgumentError) as refused:
        nnsave.save([1], target, compress=compress)
    message = str(refused.value)
    assert str(target) in message and f"compress={compress!r}" in message and "Nothing was written" in message
    assert saved_files(tmp_path) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(level=st.integers().filter(lambda n: n not in range(10)))
def test_levels_outside_0_to_9_are_refused(tmp_path, level):
    with pytest.raises(InvalidArgumentError, match=rf"compress={level}\b"):
        nnsave.save([1], tmp_path / "w.joblib", compress=level)


def test_lz4_without_its_package_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "lz4", None)  # as if it were not installed
    with pytest.raises(MissingDependencyError, match=r"w\.joblib.*compress='lz4'.*pip install lz4"):
        nnsave.save([1], tmp_path / "w.joblib", compress="lz4")
    assert saved_files(tmp_path) == []


# ------------------------------------------------------------------ mmap_mode and trusted_types


@pytest.mark.parametrize("mode", ["r", "c"])
def test_mmap_mode_maps_the_arrays(tmp_path, mode):
    path = nnsave.save({"w": np.arange(10_000.0)}, tmp_path / "w.joblib")
    loaded = nnsave.load(path, mmap_mode=mode)
    assert isinstance(loaded["w"], np.memmap) and loaded["w"].mode == mode
    assert np.array_equal(loaded["w"], np.arange(10_000.0))


@pytest.mark.parametrize("mode", ["x", "w", "R", "", 1, True])
def test_an_unknown_mmap_mode_is_refused(tmp_path, mode):
    path = nnsave.save({"w": np.arange(10.0)}, tmp_path / "w.joblib")
    with pytest.raises(InvalidArgumentError) as refused:
        nnsave.load(path, mmap_mode=mode)
    assert str(path) in str(refused.value) and f"mmap_mode={mode!r}" in str(refused.value)


def test_a_compressed_file_refuses_mmap(tmp_path):
    path = nnsave.save({"w": np.arange(10.0)}, tmp_path / "w.joblib", compress=3)
    with pytest.raises(InvalidArgumentError, match=r"w\.joblib is compressed.*mmap_mode=None"):
        nnsave.load(path, mmap_mode="r")


def test_trusted_types_do_not_apply_to_a_pickle(tmp_path):
    path = nnsave.save([1], tmp_path / "w.joblib")
    with pytest.raises(InvalidArgumentError, match=r"w\.joblib: trusted_types applies to .skops files only"):
        nnsave.load(path, trusted_types=["builtins.list"])


# ------------------------------------------------------------------ manifests


class Halver(BaseEstimator):
    """An estimator of the caller's own, built on scikit-learn's base class."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self


@pytest.mark.parametrize(
    "obj, records_sklearn",
    [
        ([1, 2, 3], False),
        ({"w": np.ones(3)}, False),
        (fitted_model(), True),
        ({"scaler": StandardScaler().fit(X), "note": "a dict holding an estimator"}, True),
        ([np.ones(2), [StandardScaler()]], True),
        (Halver(), True),
    ],
)
def test_scikit_learn_version_is_recorded_only_for_its_objects(tmp_path, obj, records_sklearn):
    info = nnsave.inspect(nnsave.save(obj, tmp_path / "x.joblib"))
    assert ("scikit-learn" in info.versions) is records_sklearn
    assert "keras" not in info.versions and "tensorflow" not in info.versions


def test_a_scikit_learn_version_mismatch_warns_on_load(tmp_path):
    path = nnsave.save(fitted_model(), tmp_path / "m.joblib")
    document = json.loads(manifest_path(path).read_text())
    assert document["versions"]["scikit-learn"]
    document["versions"]["scikit-learn"] = "0.24.2"
    manifest_path(path).write_text(json.dumps(document))  # unsigned now: vouch by hand
    with pytest.warns(nnsave.VersionMismatchWarning, match=r"scikit-learn 0\.24\.2"):
        nnsave.load(path, trusted=True)


def _with_feature_names(columns):
    """Fit on a DataFrame where pandas is installed; else give numpy string names."""
    try:
        import pandas
    except ImportError:
        model = fitted_model()
        model.feature_names_in_ = np.asarray(columns, dtype=object)
        return model
    return LogisticRegression().fit(pandas.DataFrame(X, columns=columns), y)


def test_expects_records_features_names_and_classes(tmp_path):
    columns = ["age", "height", "weight", "score"]
    info = nnsave.inspect(nnsave.save(_with_feature_names(columns), tmp_path / "m.joblib"))
    assert info.expects == {"n_features_in": 4, "feature_names_in": columns, "classes": [0, 1, 2]}
    text = str(info)
    assert "features     : 4" in text and "'height'" in text and "[0, 1, 2]" in text
    assert max(len(line) for line in text.splitlines()) <= 88


def test_expects_of_pipelines_string_classes_and_several_outputs(tmp_path):
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, np.array(["cat", "dog"])[y % 2])
    assert nnsave.inspect(nnsave.save(pipeline, tmp_path / "p.joblib")).expects == {
        "n_features_in": 4,
        "classes": ["cat", "dog"],
    }
    chain = MultiOutputClassifier(LogisticRegression()).fit(X, np.c_[y % 2, y])
    assert nnsave.inspect(nnsave.save(chain, tmp_path / "c.joblib")).expects["classes"] == [[0, 1], [0, 1, 2]]
    assert nnsave.inspect(nnsave.save(LogisticRegression(), tmp_path / "unfitted.joblib")).expects == {}


# ------------------------------------------------------------------ classes that cannot be found


def test_a_missing_module_names_the_module(tmp_path, monkeypatch):
    module = types.ModuleType("nnsave_gone")
    module.Thing = type("Thing", (), {"__module__": "nnsave_gone"})
    monkeypatch.setitem(sys.modules, "nnsave_gone", module)
    path = nnsave.save(module.Thing(), tmp_path / "gone.joblib")
    monkeypatch.delitem(sys.modules, "nnsave_gone")  # as in a process that lacks it
    with pytest.raises(UnknownClassError, match=r"gone\.joblib needs the module 'nnsave_gone'.*Install") as raised:
        nnsave.load(path)
    assert isinstance(raised.value, AttributeError) and isinstance(raised.value, TypeError)


def test_a_class_missing_from_its_module_suggests_the_version(tmp_path):
    path = tmp_path / "old.joblib"
    path.write_bytes(pickle.dumps(np.float64).replace(b"float64", b"float99"))  # numpy's __getattr__ raises
    with pytest.warns(UnverifiedFileWarning), pytest.raises(UnknownClassError, match=r"numpy\.float99.*another version"):
        nnsave.load(path, trusted=True)


def test_missing_reference_reads_exception_attributes_not_messages():
    try:
        getattr(sys.modules["__main__"], "NoSuchClass")
    except AttributeError as error:
        assert missing_reference(error) == ("__main__", "NoSuchClass")
    assert missing_reference(ModuleNotFoundError("anything", name="gone")) == ("gone", None)
    assert missing_reference(AttributeError("module '__main__' has no attribute 'X'")) is None
    long_failure = read_failure(Path("f.joblib"), ValueError("x" * 1000))
    assert isinstance(long_failure, FormatError)
    assert "x" * 197 + "..." in str(long_failure) and "x" * 198 not in str(long_failure)


# ------------------------------------------------------------------ hostile and damaged pickles


class _WritesMarker:
    """Unpickling this runs ``open(marker, "w")``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _hostile_pickle(folder: Path) -> tuple[Path, Path]:
    marker = folder / "code-ran"
    path = folder / "model.joblib"
    path.write_bytes(pickle.dumps(_WritesMarker(marker)))
    return path, marker


def _forge_manifest(path: Path, **extra) -> None:
    """A manifest anyone can write: the right digest and size, no signature."""
    data = path.read_bytes()
    from nnsave.hashing import hash_buffer

    manifest = build_manifest(
        format_name="joblib",
        digest=hash_buffer(memoryview(data), ("blake3", "sha256")),
        class_path="sklearn.linear_model._logistic.LogisticRegression",
        versions={},
        metadata={},
        expects={},
        nnsave_version=nnsave.__version__,
    )
    document = json.loads(manifest.to_json())
    document.update(extra)
    manifest_path(path).write_text(json.dumps(document))


def test_a_forged_manifest_does_not_make_a_hostile_pickle_run(tmp_path):
    path, marker = _hostile_pickle(tmp_path)
    _forge_manifest(path)
    assert nnsave.verify(path).integrity is nnsave.Integrity.INTACT  # the digest is right...
    with pytest.raises(UntrustedFileError, match=r"model\.joblib.*can run code.*not signed"):
        nnsave.load(path)  # ...and vouches for nothing
    with pytest.raises(UntrustedFileError):
        nnsave.load(path, mmap_mode="r")
    assert not marker.exists()


def test_a_forged_signature_does_not_make_a_hostile_pickle_run(tmp_path):
    path, marker = _hostile_pickle(tmp_path)
    genuine = nnsave.save([1], tmp_path / "genuine.joblib")
    signature = json.loads(manifest_path(genuine).read_text())["signature"]
    _forge_manifest(path, signature=signature)  # a real signature, of another manifest
    with pytest.raises(UntrustedFileError, match=r"model\.joblib.*can run code"):
        nnsave.load(path)
    with pytest.raises(UntrustedFileError):
        nnsave.load(path, key="someone else's key")
    assert not marker.exists()


def test_a_hostile_pickle_without_manifest_never_runs(tmp_path):
    path, marker = _hostile_pickle(tmp_path)
    with pytest.raises(UntrustedFileError, match="can run code"):
        nnsave.load(path)
    with pytest.raises(UntrustedFileError, match="can run code"):
        nnsave.load(path, trusted_types=[])
    nnsave.inspect(path)
    with pytest.raises(IntegrityError, match="no manifest"):
        nnsave.verify(path)
    assert not marker.exists()


def test_vouching_for_a_hostile_pickle_runs_it(tmp_path):
    """The control: the marker does appear when the file is vouched for."""
    path, marker = _hostile_pickle(tmp_path)
    opened = nnsave.load(path, expected_sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    opened.close()
    assert marker.exists()


def _genuine_files(folder: Path) -> dict[str, bytes]:
    obj = {"model": fitted_model(), "w": np.arange(100.0)}
    return {
        str(compress): nnsave.save(obj, folder / f"genuine-{compress}.joblib", compress=compress).read_bytes()
        for compress in (None, 3, "lzma")
    }


_GENUINE: dict[str, bytes] = {}


def _genuine(tmp_path_factory, which: str) -> bytes:
    if not _GENUINE:
        _GENUINE.update(_genuine_files(tmp_path_factory.mktemp("genuine")))
    return _GENUINE[which]


damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
)


def damaged(data: bytes, how: tuple[str, float, int]) -> bytes:
    """``data`` cut at a fraction of its length, or with one byte there flipped by a mask."""
    kind, where, mask = how
    cut = int(where * len(data))
    if kind == "truncate":
        return data[:cut]
    return data[:cut] + bytes([data[cut] ^ mask]) + data[cut + 1 :]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["None", "3", "lzma"]), how=damage)
def test_damaged_pickles_under_their_manifest_are_integrity_errors(tmp_path_factory, which, how):
    folder = tmp_path_factory.mktemp("damaged")
    genuine = folder / "model.joblib"
    nnsave.save([0], genuine)  # a signed manifest, rewritten below for the genuine bytes
    data = _genuine(tmp_path_factory, which)
    genuine.write_bytes(data)
    _forge_manifest(genuine)
    genuine.write_bytes(damaged(data, how))
    for call in (nnsave.load, nnsave.verify):
        with pytest.raises(IntegrityError):
            call(genuine)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["None", "3", "lzma"]), how=damage)
def test_damaged_pickles_vouched_for_give_only_nnsave_errors(tmp_path_factory, which, how):
    """A pickle has no checksum of its own: damage may still load; it never leaks a raw error."""
    path = tmp_path_factory.mktemp("damaged") / "model.joblib"
    data = damaged(_genuine(tmp_path_factory, which), how)
    path.write_bytes(data)
    only_nnsave_errors(path, expected_sha256=hashlib.sha256(data).hexdigest())


def only_nnsave_errors(path: Path, **load_arguments) -> None:
    """Inspect and load ``path``: they may succeed or raise nnsave errors, nothing else."""
    try:
        nnsave.inspect(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnverifiedFileWarning)
            nnsave.load(path, **load_arguments)
    except NNSaveError:
        pass
