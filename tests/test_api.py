"""Round trips and every error path of save, load, inspect, verify and roundtrip."""

from __future__ import annotations

import json
import os
import pickle
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nnsave
from nnsave import (
    FormatError,
    IntegrityError,
    UnsupportedObjectError,
    UntrustedFileError,
    UnverifiedFileWarning,
    VersionMismatchWarning,
)
from nnsave.manifest import manifest_path


def _only_artifacts(folder):
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------- Keras round trips


def test_sequential_round_trip_is_bitwise(tmp_path, trained_sequential, digits):
    X, _ = digits
    path = nnsave.save(trained_sequential, tmp_path / "seq.keras", metadata={"epochs": 2})
    restored = nnsave.load(path)
    assert np.array_equal(trained_sequential.predict(X, verbose=0), restored.predict(X, verbose=0))
    assert _only_artifacts(tmp_path) == ["seq.keras", "seq.keras.nnsave.json"]


def test_functional_round_trip_is_bitwise(tmp_path, keras, digits):
    X, _ = digits
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.Concatenate()([hidden, inputs]))
    model = keras.Model(inputs, outputs)
    restored = nnsave.load(nnsave.save(model, tmp_path / "functional.keras"))
    assert np.array_equal(model.predict(X, verbose=0), restored.predict(X, verbose=0))


def test_subclassed_model_with_registered_custom_layer(tmp_path, keras, digits):
    @keras.saving.register_keras_serializable(package="nnsave_tests")
    class Scale(keras.layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    @keras.saving.register_keras_serializable(package="nnsave_tests")
    class Classifier(keras.Model):
        def __init__(self, units=8, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.scale = Scale(0.5)
            self.hidden = keras.layers.Dense(units, activation="relu")
            self.out = keras.layers.Dense(10)

        def call(self, x):
            return self.out(self.hidden(self.scale(x)))

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    X, _ = digits
    model = Classifier()
    model(X[:1])
    path = nnsave.save(model, tmp_path / "sub.keras")
    restored = nnsave.load(path)
    assert type(restored).__name__ == "Classifier"
    assert np.array_equal(model.predict(X, verbose=0), restored.predict(X, verbose=0))
    assert nnsave.inspect(path).parameter_count == model.count_params()


def test_optimizer_state_survives(tmp_path, trained_sequential):
    restored = nnsave.load(nnsave.save(trained_sequential, tmp_path / "opt.keras"))
    before, after = trained_sequential.optimizer, restored.optimizer
    assert int(after.iterations.numpy()) == int(before.iterations.numpy()) == 10
    assert len(before.variables) == len(after.variables) > 2
    for old, new in zip(before.variables, after.variables):
        assert np.array_equal(old.numpy(), new.numpy()), old.path


def test_inspect_reads_layers_and_parameters_without_building(tmp_path, trained_sequential):
    path = nnsave.save(trained_sequential, tmp_path / "seq.keras", metadata={"note": "hi"})
    info = nnsave.inspect(path)
    assert info.format == "keras" and info.hash_status == "verified" and info.problem is None
    assert [layer["type"] for layer in info.layers] == ["InputLayer", "Dense", "Dense"]
    assert info.parameter_count == trained_sequential.count_params() == 64 * 16 + 16 + 16 * 10 + 10
    assert info.class_path.endswith("Sequential")
    assert info.metadata == {"note": "hi"}
    assert info.versions["keras"] == nnsave.manifest.installed_versions()["keras"]
    text = str(info)
    assert "verified" in text and "1,210" in text and "dense" in text
    assert json.loads(json.dumps(info.to_dict()))["parameter_count"] == 1210


def test_plain_keras_file_loads_with_unverified_warning(tmp_path, trained_sequential):
    path = tmp_path / "plain.keras"
    trained_sequential.save(path)
    with pytest.warns(UnverifiedFileWarning, match="no nnsave manifest"):
        nnsave.load(path)
    assert nnsave.inspect(path).hash_status == "no manifest"


def test_lambda_layer_is_refused_in_safe_mode(tmp_path, keras):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x + 1)])
    path = nnsave.save(model, tmp_path / "lambda.keras")
    with pytest.raises(UntrustedFileError, match="safe_mode=False together with trusted=True"):
        nnsave.load(path)
    restored = nnsave.load(path, safe_mode=False)  # verified by its manifest
    assert np.array_equal(restored.predict(np.zeros((1, 3)), verbose=0), np.ones((1, 3)))


def test_unsafe_mode_needs_trust_without_manifest(tmp_path, keras):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    path = tmp_path / "plain.keras"
    model.save(path)
    with pytest.raises(UntrustedFileError, match="trusted=True"):
        nnsave.load(path, safe_mode=False)
    with pytest.warns(UnverifiedFileWarning):
        assert nnsave.load(path, safe_mode=False, trusted=True).count_params() == 8


def test_unregistered_custom_class_gives_remedy(tmp_path, keras):
    class Unregistered(keras.layers.Layer):
        def call(self, x):
            return x

    model = keras.Sequential([keras.Input((3,)), Unregistered()])
    path = nnsave.save(model, tmp_path / "custom.keras")
    with pytest.raises(FormatError, match="register_keras_serializable"):
        nnsave.load(path)


def test_keras_compress_is_refused_before_writing(tmp_path, trained_sequential):
    with pytest.raises(ValueError, match="compress applies to .joblib"):
        nnsave.save(trained_sequential, tmp_path / "m.keras", compress=3)
    assert _only_artifacts(tmp_path) == []


# ---------------------------------------------------------- scikit-learn round trips


def _sklearn_models():
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "linear": LinearRegression(),
        "logistic": LogisticRegression(max_iter=500),
        "mlp": MLPClassifier(hidden_layer_sizes=(16,), max_iter=1000, random_state=0),
        "pipeline": make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
    }


@pytest.mark.parametrize("name", ["linear", "logistic", "mlp", "pipeline"])
def test_sklearn_round_trips_are_bitwise(tmp_path, digits, name):
    X, y = digits
    model = _sklearn_models()[name].fit(X, y)
    restored = nnsave.load(nnsave.save(model, tmp_path / f"{name}.joblib"))
    assert np.array_equal(model.predict(X), restored.predict(X))
    if hasattr(model, "predict_proba"):
        assert np.array_equal(model.predict_proba(X), restored.predict_proba(X))
    report = nnsave.roundtrip(model, X)
    assert report.ok and report.max_abs_diff == 0.0 and report.format == "joblib"


def test_roundtrip_report_for_keras(trained_sequential, digits):
    report = nnsave.roundtrip(trained_sequential, digits[0])
    assert report.ok and report.compared == {"predict": 0.0} and report.size > 0


def test_roundtrip_detects_a_difference(monkeypatch, digits):
    from sklearn.linear_model import LinearRegression

    X, y = digits
    model = LinearRegression().fit(X, y)
    real_load = nnsave.api.load

    def load_and_nudge(path, **kwargs):
        restored = real_load(path, **kwargs)
        restored.intercept_ = restored.intercept_ + 1e-3
        return restored

    monkeypatch.setattr(nnsave.api, "load", load_and_nudge)
    report = nnsave.roundtrip(model, X)
    assert not report.ok and report.max_abs_diff == pytest.approx(1e-3, rel=1e-2)
    assert nnsave.roundtrip(model, X, atol=1e-2).ok


def test_roundtrip_needs_predict():
    with pytest.raises(TypeError, match="no predict method"):
        nnsave.roundtrip({"a": 1}, [[1]])


def test_compression_is_passed_through(tmp_path):
    data = {"zeros": np.zeros(100_000)}
    small = nnsave.save(data, tmp_path / "small.joblib", compress=3)
    large = nnsave.save(data, tmp_path / "large.joblib")
    assert small.stat().st_size * 20 < large.stat().st_size
    assert nnsave.inspect(small).details == {"compression": "zlib"}
    assert np.array_equal(nnsave.load(small)["zeros"], data["zeros"])


def test_mmap_mode(tmp_path):
    path = nnsave.save({"w": np.arange(1000.0)}, tmp_path / "w.joblib")
    loaded = nnsave.load(path, mmap_mode="r")
    assert isinstance(loaded["w"], np.memmap) and loaded["w"][999] == 999.0
    compressed = nnsave.save({"w": np.arange(10.0)}, tmp_path / "c.joblib", compress=1)
    with pytest.raises(ValueError, match="cannot be memory-mapped"):
        nnsave.load(compressed, mmap_mode="r")


# ------------------------------------------------------------------ numpy payloads

dtypes = st.sampled_from(["bool", "int8", "int32", "int64", "uint16", "float16", "float32", "float64", "complex64"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(array=hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=6)))
def test_any_array_round_trips(tmp_path_factory, array):
    path = nnsave.save(array, tmp_path_factory.mktemp("arr") / "a.joblib")
    loaded = nnsave.load(path)
    assert loaded.dtype == array.dtype and loaded.shape == array.shape
    assert np.array_equal(loaded, array, equal_nan=array.dtype.kind in "fc")
    assert nnsave.verify(path).size == path.stat().st_size


def test_dict_of_arrays(tmp_path):
    data = {"w": np.ones((3, 4), "float32"), "b": np.arange(4), "nested": {"x": np.eye(2)}}
    loaded = nnsave.load(nnsave.save(data, tmp_path / "d.joblib"))
    assert loaded.keys() == data.keys()
    assert all(np.array_equal(loaded[k], data[k]) for k in ("w", "b"))
    assert np.array_equal(loaded["nested"]["x"], np.eye(2))


# ------------------------------------------------------------------ save errors


def test_unknown_suffix(tmp_path):
    with pytest.raises(FormatError, match=r"suffix '\.pt'.*\.keras.*\.joblib"):
        nnsave.save([1], tmp_path / "model.pt")
    assert _only_artifacts(tmp_path) == []


def test_keras_model_to_joblib_is_refused(tmp_path, trained_sequential):
    with pytest.raises(FormatError, match=r"saved as \.keras.*'m\.keras'"):
        nnsave.save(trained_sequential, tmp_path / "m.joblib")
    assert _only_artifacts(tmp_path) == []


def test_estimator_to_keras_is_refused(tmp_path):
    from sklearn.linear_model import LinearRegression

    with pytest.raises(FormatError, match=r"LinearRegression is saved as \.joblib"):
        nnsave.save(LinearRegression(), tmp_path / "m.keras")
    assert _only_artifacts(tmp_path) == []


def test_unsupported_objects(tmp_path, keras):
    with pytest.raises(UnsupportedObjectError, match="cannot be pickled") as caught:
        nnsave.save((i for i in range(3)), tmp_path / "g.joblib")
    assert isinstance(caught.value, TypeError)
    with pytest.raises(UnsupportedObjectError, match="keras.Model that holds it"):
        nnsave.save(keras.layers.Dense(3), tmp_path / "layer.keras")
    assert _only_artifacts(tmp_path) == []


def test_bad_metadata_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="JSON-serialisable"):
        nnsave.save([1], tmp_path / "x.joblib", metadata={"array": np.ones(2)})
    assert _only_artifacts(tmp_path) == []


def test_overwrite_false(tmp_path):
    path = nnsave.save([1], tmp_path / "x.joblib")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        nnsave.save([2], path, overwrite=False)
    assert nnsave.load(path) == [1]


def test_save_into_missing_directory_or_onto_a_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        nnsave.save([1], tmp_path / "missing" / "x.joblib")
    (tmp_path / "dir.joblib").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        nnsave.save([1], tmp_path / "dir.joblib")


# ------------------------------------------------------------------ atomicity


class _Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("this part cannot be pickled")


def test_object_that_fails_halfway_leaves_old_artifact(tmp_path):
    path = nnsave.save({"v": 1}, tmp_path / "x.joblib")
    before = path.read_bytes(), manifest_path(path).read_bytes()
    half_picklable = {"big": np.ones(100_000), "bad": _Unpicklable()}
    with pytest.raises(UnsupportedObjectError, match="could not be pickled.*previous file is unchanged"):
        nnsave.save(half_picklable, path)
    assert (path.read_bytes(), manifest_path(path).read_bytes()) == before
    assert nnsave.verify(path).hash_status == "verified" and nnsave.load(path) == {"v": 1}
    assert _only_artifacts(tmp_path) == ["x.joblib", "x.joblib.nnsave.json"]


@pytest.mark.parametrize("fail_after", [0, 1, 4096, 60_000])
def test_writer_that_raises_after_n_bytes(tmp_path, monkeypatch, fail_after):
    path = nnsave.save({"v": np.arange(5)}, tmp_path / "x.joblib")
    real_write = nnsave.storage.HashingWriter.write
    written = {"n": 0}

    def failing_write(self, data):
        if written["n"] + len(memoryview(data).cast("B")) > fail_after:
            raise OSError(28, "No space left on device")
        written["n"] += len(memoryview(data).cast("B"))
        return real_write(self, data)

    monkeypatch.setattr(nnsave.storage.HashingWriter, "write", failing_write)
    with pytest.raises(OSError, match="No space left.*x.joblib.*unchanged"):
        nnsave.save({"v": np.arange(100_000)}, path)
    monkeypatch.undo()
    assert np.array_equal(nnsave.load(path)["v"], np.arange(5))
    assert _only_artifacts(tmp_path) == ["x.joblib", "x.joblib.nnsave.json"]


def test_keras_writer_crash_leaves_old_model(tmp_path, monkeypatch, trained_sequential):
    from keras.src.saving import saving_lib

    path = nnsave.save(trained_sequential, tmp_path / "m.keras")
    before = path.read_bytes()

    def crash_midway(model, stream):
        stream.write(before[: len(before) // 2])
        raise RuntimeError("killed while writing weights")

    monkeypatch.setattr(saving_lib, "save_model", crash_midway)
    with pytest.raises(RuntimeError, match="killed"):
        nnsave.save(trained_sequential, path)
    assert path.read_bytes() == before and nnsave.verify(path)
    assert _only_artifacts(tmp_path) == ["m.keras", "m.keras.nnsave.json"]


def test_keras_archive_is_hashed_while_keras_writes_it(tmp_path, monkeypatch, trained_sequential):
    def no_second_pass(path):
        raise AssertionError(f"{path} was read back to hash it")

    monkeypatch.setattr(nnsave.storage, "hash_file", no_second_pass)
    path = nnsave.save(trained_sequential, tmp_path / "m.keras")
    monkeypatch.undo()
    assert nnsave.verify(path).hash_status == "verified"


def test_keras_archive_falls_back_to_the_public_api(tmp_path, monkeypatch, trained_sequential, digits):
    from nnsave.formats import keras_archive

    monkeypatch.setattr(keras_archive, "_stream_writer", lambda: None)
    path = nnsave.save(trained_sequential, tmp_path / "m.keras")
    assert nnsave.verify(path).hash_status == "verified"
    X = digits[0][:5]
    assert np.array_equal(nnsave.load(path).predict(X, verbose=0), trained_sequential.predict(X, verbose=0))
    assert _only_artifacts(tmp_path) == ["m.keras", "m.keras.nnsave.json"]


# ------------------------------------------------------------------ load errors


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such file"):
        nnsave.load(tmp_path / "nope.joblib")
    with pytest.raises(IsADirectoryError, match="latest_checkpoint"):
        nnsave.load(tmp_path)


def test_truncated_payload(tmp_path):
    path = nnsave.save({"v": np.arange(1000)}, tmp_path / "x.joblib")
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(IntegrityError, match=rf"x.joblib.*size is {size - 10} bytes, expected {size} \(truncated\)"):
        nnsave.load(path)


def test_flipped_byte(tmp_path):
    path = nnsave.save({"v": np.arange(1000)}, tmp_path / "x.joblib")
    expected = json.loads(manifest_path(path).read_text())["sha256"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=rf"sha256 is [0-9a-f]{{64}}, expected {expected}"):
        nnsave.load(path)
    with pytest.raises(IntegrityError):
        nnsave.verify(path)
    assert nnsave.inspect(path).hash_status == "mismatch"


def test_damaged_manifest(tmp_path):
    path = nnsave.save([1], tmp_path / "x.joblib")
    manifest_path(path).write_text("{")
    with pytest.raises(IntegrityError, match="manifest .* is damaged"):
        nnsave.load(path)
    assert nnsave.inspect(path).hash_status == "mismatch"


def test_manifest_of_another_format(tmp_path):
    path = nnsave.save([1], tmp_path / "x.joblib")
    document = json.loads(manifest_path(path).read_text())
    document["format"] = "keras"
    manifest_path(path).write_text(json.dumps(document))
    with pytest.raises(IntegrityError, match="describes a keras file"):
        nnsave.load(path)


def test_joblib_without_manifest_needs_trust(tmp_path):
    import joblib

    path = tmp_path / "plain.joblib"
    joblib.dump([1, 2], path)
    with pytest.raises(UntrustedFileError, match="no nnsave manifest.*trusted=True"):
        nnsave.load(path)
    with pytest.warns(UnverifiedFileWarning):
        assert nnsave.load(path, trusted=True) == [1, 2]


def test_verify_false_needs_trust_for_pickles(tmp_path):
    path = nnsave.save([1], tmp_path / "x.joblib")
    with pytest.raises(UntrustedFileError, match="verify=False"):
        nnsave.load(path, verify=False)
    assert nnsave.load(path, verify=False, trusted=True) == [1]


def test_version_mismatch_warns_with_both_versions(tmp_path):
    from sklearn.linear_model import LinearRegression

    path = nnsave.save(LinearRegression().fit([[0], [1]], [0, 1]), tmp_path / "lr.joblib")
    document = json.loads(manifest_path(path).read_text())
    installed = document["versions"]["scikit-learn"]
    document["versions"]["scikit-learn"] = "1.8.0"
    manifest_path(path).write_text(json.dumps(document))
    with pytest.warns(VersionMismatchWarning, match=rf"scikit-learn 1\.8\.0.*scikit-learn {installed}"):
        nnsave.load(path)


@pytest.mark.parametrize("suffix", [".joblib", ".keras"])
def test_version_mismatch_warning_points_at_the_caller(tmp_path, trained_sequential, suffix):
    obj = trained_sequential if suffix == ".keras" else [1]
    path = nnsave.save(obj, tmp_path / f"m{suffix}")
    document = json.loads(manifest_path(path).read_text())
    document["versions"]["keras" if suffix == ".keras" else "numpy"] = "0.1.0"
    manifest_path(path).write_text(json.dumps(document))
    with pytest.warns(VersionMismatchWarning) as caught:
        nnsave.load(path)
    assert [warning.filename for warning in caught] == [__file__]


def _hashing_threads(monkeypatch):
    """Record the name of the thread each payload hash runs in."""
    threads = []
    real_file_digest = nnsave.digest_cache.file_digest

    def recording(path, **kwargs):
        threads.append(threading.current_thread().name)
        return real_file_digest(path, **kwargs)

    monkeypatch.setattr(nnsave.digest_cache, "file_digest", recording)
    return threads


def test_keras_in_safe_mode_is_hashed_while_it_loads(tmp_path, monkeypatch, trained_sequential, digits):
    path = nnsave.save(trained_sequential, tmp_path / "m.keras")
    threads = _hashing_threads(monkeypatch)
    restored = nnsave.load(path)
    assert len(threads) == 1 and threads[0].startswith("nnsave-verify")
    X = digits[0][:5]
    assert np.array_equal(restored.predict(X, verbose=0), trained_sequential.predict(X, verbose=0))


@pytest.mark.parametrize(
    "obj, suffix, kwargs",
    [([1, 2], ".joblib", {}), (None, ".keras", {"safe_mode": False, "trusted": True}), (None, ".keras", {"key": "k"})],
    ids=["pickle", "keras-unsafe-mode", "keras-signed"],
)
def test_loads_the_hash_authorises_verify_before_reading(tmp_path, monkeypatch, trained_sequential, obj, suffix, kwargs):
    path = nnsave.save(trained_sequential if obj is None else obj, tmp_path / f"m{suffix}", key=kwargs.get("key"))
    threads = _hashing_threads(monkeypatch)
    nnsave.load(path, **kwargs)
    assert threads == [threading.current_thread().name]


def test_damaged_keras_found_while_loading_is_reported_as_damage(tmp_path, trained_sequential):
    path = nnsave.save(trained_sequential, tmp_path / "m.keras")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its manifest"):
        nnsave.load(path)


def test_not_a_model_files(tmp_path):
    text = tmp_path / "notes.keras"
    text.write_text("hello")
    with pytest.raises(FormatError, match="not a Keras archive"):
        nnsave.load(text)
    with pytest.raises(FormatError, match="not a Keras archive"):
        nnsave.inspect(text)
    zipped = tmp_path / "model.joblib"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 20)
    with pytest.raises(FormatError, match="belongs in a .keras file"):
        nnsave.load(zipped, trusted=True)
    unknown = tmp_path / "notes.txt"
    unknown.write_text("x")
    with pytest.raises(FormatError, match="does not know the suffix"):
        nnsave.inspect(unknown)


def test_verify_without_manifest(tmp_path):
    import joblib

    path = tmp_path / "plain.joblib"
    joblib.dump([1], path)
    with pytest.raises(IntegrityError, match="has no manifest"):
        nnsave.verify(path)


# ------------------------------------------------------- interrupted saves


def _tear(path, new_object):
    """Leave ``path`` as a kill between the payload's and the manifest's renames would."""
    staging_dir = path.parent / "staging"
    staging_dir.mkdir()
    fresh = nnsave.save(new_object, staging_dir / path.name)
    staged_manifest = path.parent / f".{manifest_path(path).name}{nnsave.storage.TEMP_MARKER}0dead"
    os.replace(manifest_path(fresh), staged_manifest)
    os.replace(fresh, path)
    staging_dir.rmdir()


def test_torn_save_is_rolled_forward(tmp_path):
    path = nnsave.save({"v": 1}, tmp_path / "x.joblib")
    _tear(path, {"v": 2})
    assert nnsave.load(path) == {"v": 2}
    assert _only_artifacts(tmp_path) == ["x.joblib", "x.joblib.nnsave.json"]


def test_save_cleans_stale_leftovers(tmp_path):
    path = nnsave.save({"v": 1}, tmp_path / "x.joblib")
    (tmp_path / f".x.joblib{nnsave.storage.TEMP_MARKER}dead").write_bytes(b"half")
    nnsave.save({"v": 3}, path)
    assert _only_artifacts(tmp_path) == ["x.joblib", "x.joblib.nnsave.json"]
    assert nnsave.api.clean_directory(tmp_path) == []
