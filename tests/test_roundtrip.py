"""roundtrip compares every output of every prediction method, however it is nested."""

from __future__ import annotations

import numpy as np
import pytest

import nnsave
from nnsave.errors import InvalidArgumentError, UnsupportedObjectError


class Multi:
    """Predicts a dict holding a list: the shape of a multi-output model's result."""

    def __init__(self, scale):
        self.scale = scale

    def predict(self, X):
        X = np.asarray(X, dtype=float)
        return {"b": [X * self.scale, X[:, :1]], "a": X.sum(axis=1)}


class Changing(Multi):
    """Predicts differently once loaded: the round trip must notice."""

    def __setstate__(self, state):
        self.__dict__.update(state, scale=state["scale"] + 1)


def test_nested_outputs_are_compared_leaf_by_leaf():
    report = nnsave.roundtrip(Multi(2.0), [[1.0, 2.0], [3.0, 4.0]])
    assert report.ok and report.max_abs_diff == 0.0 and report.format == "joblib"


def test_a_difference_anywhere_is_found():
    report = nnsave.roundtrip(Changing(2.0), [[1.0, 2.0]])
    assert not report.ok and report.max_abs_diff == pytest.approx(2.0)
    assert nnsave.roundtrip(Changing(2.0), [[1.0, 2.0]], atol=3.0).ok


def test_predict_proba_is_compared_too():
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    report = nnsave.roundtrip(model, [[1.5]], suffix=".skops")
    assert report.ok and set(report.compared) == {"predict", "predict_proba"} and report.format == "skops"


def test_errors_name_the_callers_object_not_a_temporary_file():
    with pytest.raises(InvalidArgumentError, match="no predict method"):
        nnsave.roundtrip(object(), [[1]])
    holder = Multi(1.0)
    holder.postprocess = lambda x: x  # skops stores functions by name: it can never load this
    with pytest.raises(UnsupportedObjectError) as caught:
        nnsave.roundtrip(holder, [[1]], suffix=".skops")
    assert "the round trip of your test_roundtrip.Multi" in str(caught.value)
    assert "nnsave-roundtrip" not in str(caught.value)
