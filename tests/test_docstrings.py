"""The Examples sections in the public docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "nnsave",
    "nnsave.api",
    "nnsave.book",
    "nnsave.digest_cache",
    "nnsave.formats._keras",
    "nnsave.hashing",
    "nnsave.keys",
    "nnsave.manifest",
    "nnsave.parsing",
    "nnsave.paths",
    "nnsave.roundtrip",
    "nnsave.trust",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    results = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0 and results.failed == 0
