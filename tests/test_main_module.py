"""Classes and functions defined in ``__main__``: a warning at save time, a clear error elsewhere.

A script that defines a transformer and pickles a pipeline holding it writes
a file that only that script can load: the pickle names ``__main__.Clipper``,
and another program's ``__main__`` has no Clipper. The scripts below run in
fresh processes, as a user's would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import FunctionTransformer

import nnsave
from nnsave import UnportableObjectWarning, UnsupportedObjectError

_DEFINITIONS = """
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Clipper(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        self.high_ = np.percentile(X, 90)
        return self

    def transform(self, X):
        return np.minimum(X, self.high_)
"""

_SAVE = _DEFINITIONS + """
import json, sys, warnings

import nnsave
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

X, y = load_digits(return_X_y=True)
pipeline = make_pipeline(Clipper(), LogisticRegression(max_iter=200)).fit(X[:200], y[:200])
np.save("expected.npy", pipeline.predict_proba(X[:20]))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    nnsave.save(pipeline, sys.argv[1])  # SAVE LINE
print(json.dumps([
    {"category": w.category.__name__, "filename": w.filename, "lineno": w.lineno, "message": str(w.message)}
    for w in caught
]))
"""

_LOAD = """
import json, sys

import nnsave

try:
    nnsave.load(sys.argv[1])
except nnsave.NNSaveError as error:
    print(json.dumps({"type": type(error).__name__, "bases": [c.__name__ for c in type(error).__mro__],
                      "message": str(error)}))
"""

_DEFINE_THEN_LOAD = _DEFINITIONS + """
import sys

import nnsave
from sklearn.datasets import load_digits

X, _ = load_digits(return_X_y=True)
expected = np.load("expected.npy")
assert np.array_equal(nnsave.load(sys.argv[1]).predict_proba(X[:20]), expected)
print("loaded")
"""


def _run(folder: Path, script: str, name: str, *arguments: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(script))
    result = subprocess.run(
        [sys.executable, str(path), *arguments], cwd=folder, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=[".joblib", ".skops"])
def saved_by_a_script(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("script")
    target = f"pipeline{request.param}"
    caught = json.loads(_run(folder, _SAVE, "train.py", target))
    return folder, target, caught


def test_saving_warns_at_the_callers_line(saved_by_a_script):
    folder, target, caught = saved_by_a_script
    assert [w["category"] for w in caught] == ["UnportableObjectWarning"]
    warning = caught[0]
    script_lines = (folder / "train.py").read_text().splitlines()
    assert Path(warning["filename"]) == folder / "train.py"
    assert script_lines[warning["lineno"] - 1].endswith("# SAVE LINE")
    assert target in warning["message"] and "__main__.Clipper" in warning["message"]
    assert "Another process cannot import it" in warning["message"]


def test_another_process_gets_an_error_naming_file_and_class(saved_by_a_script):
    folder, target, _ = saved_by_a_script
    error = json.loads(_run(folder, _LOAD, "serve.py", target))
    assert error["type"] == "UnknownClassError"
    assert {"AttributeError", "TypeError", "ValueError"} <= set(error["bases"])
    message = error["message"]
    assert message.startswith(target) and "'Clipper'" in message
    assert "__main__" in message and "Define or import it before loading" in message


def test_the_advice_works_defining_the_class_lets_the_file_load(saved_by_a_script):
    folder, target, _ = saved_by_a_script
    assert _run(folder, _DEFINE_THEN_LOAD, "notebook_like.py", target).strip() == "loaded"


# ------------------------------------------------------------------ in this process


def _clip(X):
    return np.minimum(X, 1.0)


def test_a_main_function_warns_with_the_callers_line(tmp_path, monkeypatch):
    main = sys.modules["__main__"]
    monkeypatch.setattr(_clip, "__module__", "__main__")
    monkeypatch.setattr(main, "_clip", _clip, raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1  # the next line
        nnsave.save(FunctionTransformer(_clip), tmp_path / "clip.joblib")
    assert [w.category for w in caught] == [UnportableObjectWarning]
    assert caught[0].filename == __file__ and caught[0].lineno == line
    assert "__main__._clip" in str(caught[0].message)


def test_a_lambda_is_refused_by_skops_at_save_time(tmp_path):
    with pytest.raises(UnsupportedObjectError, match=r"lambda\.skops: the object uses .*<lambda>.*\.joblib"):
        nnsave.save(FunctionTransformer(lambda X: X + 1), tmp_path / "lambda.skops")
    assert not (tmp_path / "lambda.skops").exists()


def test_a_lambda_cannot_be_pickled_either(tmp_path):
    with pytest.raises(UnsupportedObjectError, match=r"lambda\.joblib.*could not be pickled.*lambdas"):
        nnsave.save(FunctionTransformer(lambda X: X + 1), tmp_path / "lambda.joblib")
    assert not (tmp_path / "lambda.joblib").exists()
