"""The Examples sections in the public docstrings run and print what they claim."""

import doctest

import pytest

import nnsave
import nnsave.api
import nnsave.checkpoint
import nnsave.digest_cache


@pytest.mark.parametrize("module", [nnsave, nnsave.api, nnsave.checkpoint, nnsave.digest_cache], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted > 0 and results.failed == 0
