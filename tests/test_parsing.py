"""Defensive JSON: hostile but valid documents become one chosen error, never a crash."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnsave import parsing


class Damaged(Exception):
    pass


@pytest.mark.parametrize(
    "data",
    [
        b"{not json",
        b"\xff\xfe",  # not UTF-8
        b'{"n": NaN}',
        b'{"n": Infinity}',
        ("1" * 5000).encode(),  # longer than Python converts
        b"[" * 100_000 + b"]" * 100_000,  # deeper than the C parser's recursion limit
        b"[" * 300 + b"]" * 300,  # parses, but deeper than MAX_DEPTH
    ],
    ids=["syntax", "encoding", "nan", "infinity", "huge-int", "recursion", "depth"],
)
def test_hostile_documents_raise_the_chosen_error(data):
    with pytest.raises(Damaged):
        parsing.load_json(data, Damaged)


def test_field_checks_types_and_never_counts_bool_as_int():
    document = {"size": 3, "flag": True, "name": "x", "items": []}
    assert parsing.field(document, "size", int, Damaged) == 3
    for name, kind in [("flag", int), ("name", int), ("items", str), ("missing", str)]:
        with pytest.raises(Damaged, match=name):
            parsing.field(document, name, kind, Damaged)
    with pytest.raises(Damaged, match="not a JSON object"):
        parsing.field(["a", "list"], "size", int, Damaged)


def test_optional_field():
    assert parsing.optional_field({"a": None}, "a", dict, Damaged) is None
    assert parsing.optional_field({}, "a", dict, Damaged) is None
    with pytest.raises(Damaged):
        parsing.optional_field({"a": []}, "a", dict, Damaged)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(document=_json)
def test_every_ordinary_document_parses_unchanged(document):
    assert parsing.load_json(json.dumps(document).encode(), Damaged) == document


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_another_error(data):
    try:
        parsing.load_json(data, Damaged)
    except Damaged:
        pass
