"""Signing, pinned hashes and approved types: the decisions in nnsave.trust."""

import json
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

import nnsave
from nnsave import IntegrityError, UntrustedFileError
from nnsave.manifest import manifest_path
from nnsave.trust import resolve_key


def test_resolve_key(monkeypatch):
    monkeypatch.delenv("NNSAVE_KEY", raising=False)
    assert resolve_key(None) is None
    assert resolve_key("secret") == b"secret"
    monkeypatch.setenv("NNSAVE_KEY", "from-env")
    assert resolve_key(None) == b"from-env"
    with pytest.raises(TypeError, match="non-empty"):
        resolve_key(b"")


def test_signed_file_loads_with_the_key_only(tmp_path, monkeypatch):
    monkeypatch.delenv("NNSAVE_KEY", raising=False)
    path = nnsave.save({"w": np.arange(3)}, tmp_path / "signed.joblib", key="k1")
    assert json.loads(manifest_path(path).read_text())["signature"]
    assert nnsave.load(path, key="k1")["w"].tolist() == [0, 1, 2]
    with pytest.raises(UntrustedFileError, match="signature does not match the key"):
        nnsave.load(path, key="k2")


def test_key_from_the_environment_signs_and_requires(tmp_path, monkeypatch):
    monkeypatch.setenv("NNSAVE_KEY", "env-key")
    signed = nnsave.save([1], tmp_path / "a.joblib")
    assert nnsave.load(signed) == [1]
    monkeypatch.delenv("NNSAVE_KEY")
    unsigned = nnsave.save([2], tmp_path / "b.joblib")
    with pytest.raises(UntrustedFileError, match="manifest is not signed"):
        nnsave.load(unsigned, key="env-key")


def test_forged_manifest_is_refused_under_a_key(tmp_path, monkeypatch):
    import joblib

    monkeypatch.delenv("NNSAVE_KEY", raising=False)
    path = nnsave.save([1, 2], tmp_path / "x.joblib", key="k")
    joblib.dump(["evil"], path)  # the attacker replaces the payload and re-hashes it
    document = json.loads(manifest_path(path).read_text())
    document["sha256"] = nnsave.storage.hash_file(path).sha256
    document["size"] = path.stat().st_size
    manifest_path(path).write_text(json.dumps(document))
    with pytest.raises(UntrustedFileError, match="signature does not match"):
        nnsave.load(path, key="k")


def test_key_without_manifest_is_refused(tmp_path, monkeypatch):
    import joblib

    monkeypatch.delenv("NNSAVE_KEY", raising=False)
    joblib.dump([1], tmp_path / "bare.joblib")
    with pytest.raises(UntrustedFileError, match="no nnsave manifest and so no signature"):
        nnsave.load(tmp_path / "bare.joblib", key="k", trusted=True)


def test_expected_sha256_pins_a_file_and_vouches_for_it(tmp_path, monkeypatch):
    import joblib

    monkeypatch.delenv("NNSAVE_KEY", raising=False)
    path = tmp_path / "shared.joblib"
    joblib.dump({"a": 1}, path)
    digest = nnsave.storage.hash_file(path).sha256
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pinned hash is a verification: no UnverifiedFileWarning
        assert nnsave.load(path, expected_sha256=digest.upper()) == {"a": 1}
    with pytest.raises(IntegrityError, match="expected_sha256 is 0000"):
        nnsave.load(path, expected_sha256="0" * 64)


class Shift(TransformerMixin, BaseEstimator):
    """A transformer skops has never heard of, so it must be approved by name."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X + 1.0


def test_skops_round_trip_and_untrusted_types(tmp_path, digits):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X, y = digits
    model = LogisticRegression(max_iter=300).fit(X, y)
    path = nnsave.save(model, tmp_path / "m.skops")
    assert nnsave.inspect(path).details == {"untrusted_types": []}
    assert np.array_equal(nnsave.load(path).predict_proba(X), model.predict_proba(X))

    risky = make_pipeline(Shift(), LogisticRegression(max_iter=300)).fit(X, y)
    risky_path = nnsave.save(risky, tmp_path / "risky.skops")
    untrusted = nnsave.inspect(risky_path).details["untrusted_types"]
    assert untrusted == [f"{__name__}.Shift"]
    with pytest.raises(UntrustedFileError, match=r"Shift\. If you know them.*trusted_types"):
        nnsave.load(risky_path)
    restored = nnsave.load(risky_path, trusted_types=untrusted)
    assert np.array_equal(restored.predict(X), risky.predict(X))
    assert nnsave.load(risky_path, trusted=True).predict(X[:1]).shape == (1,)


def test_skops_is_refused_for_keras_and_not_a_zip(tmp_path, keras):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(nnsave.FormatError, match=r"saved as \.keras"):
        nnsave.save(model, tmp_path / "m.skops")
    (tmp_path / "text.skops").write_text("hello")
    with pytest.raises(nnsave.FormatError, match="not a skops file"):
        nnsave.inspect(tmp_path / "text.skops")
