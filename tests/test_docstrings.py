"""The Examples sections in the public docstrings run and print what they claim."""

import doctest

import pytest

import nnsave
import nnsave.api
import nnsave.checkpoint


@pytest.mark.parametrize("module", [nnsave, nnsave.api, nnsave.checkpoint], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0 and results.failed == 0
