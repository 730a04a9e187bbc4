"""checkpoint.json: written and read back exactly; anything hostile is a damaged index, never a crash."""

from __future__ import annotations

import doctest
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnsave.checkpoint.index
from nnsave.checkpoint import CheckpointEntry, checkpoint_name
from nnsave.checkpoint.index import DamagedIndexError, Index, build_index, epoch_of, index_bytes, parse_index
from nnsave.errors import FormatError

GOOD = {
    "format": "nnsave-checkpoint-index",
    "schema_version": 1,
    "monitor": "val_loss",
    "mode": "min",
    "latest": "ckpt-00003.keras",
    "best": "ckpt-00002.keras",
    "checkpoints": [
        {"file": "ckpt-00002.keras", "epoch": 2, "value": 0.25},
        {"file": "ckpt-00003.keras", "epoch": 3, "value": 0.5},
    ],
}


def with_changes(*changes):
    """GOOD as bytes, after each (path, value) change; a path is a tuple of keys and indexes."""
    document = json.loads(json.dumps(GOOD))
    for path, value in changes:
        node = document
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
    return json.dumps(document).encode()


def test_an_index_without_abandoned_reads_as_none_abandoned():
    assert parse_index(with_changes()).abandoned == ()


def test_an_index_reads_back_exactly():
    entries = [CheckpointEntry(checkpoint_name(e), e, v) for e, v in [(1, 0.5), (2, 0.25), (3, None), (4, 0.1 + 0.2)]]
    index = build_index(entries[::-1], "val_loss", "min", abandoned=[checkpoint_name(9)])
    assert index.entries == entries and index.latest == checkpoint_name(4) and index.best == checkpoint_name(2)
    assert parse_index(index_bytes(index)) == index
    assert build_index([], None, "max") == Index([], None, None, None, "max")
    assert parse_index(with_changes()).entries[1] == CheckpointEntry("ckpt-00003.keras", 3, 0.5)


DEEP = b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "checkpoints": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"

HOSTILE = {
    "not JSON": b"{not json",
    "not UTF-8": b'{"format": "\xff"}',
    "NaN": with_changes((("checkpoints", 0, "value"), 0)).replace(b"0}", b"NaN}", 1),
    "a list": b"[]",
    "another format": with_changes((("format",), "nnsave-manifest")),
    "a string schema": with_changes((("schema_version",), "1")),
    "a newer schema": with_changes((("schema_version",), 2)),
    "checkpoints a string": with_changes((("checkpoints",), "ckpt-00002.keras")),
    "an entry a list": with_changes((("checkpoints", 0), [])),
    "an epoch a string": with_changes((("checkpoints", 0, "epoch"), "2")),
    "an epoch a bool": with_changes((("checkpoints", 0, "epoch"), True)),
    "a value a string": with_changes((("checkpoints", 0, "value"), "low")),
    "a value beyond floats": with_changes((("checkpoints", 0, "value"), 10**400)),
    "a value of 1e999": with_changes((("checkpoints", 0, "value"), 0)).replace(b'"value": 0', b'"value": 1e999'),
    "an epoch of 5000 digits": with_changes((("checkpoints", 0, "epoch"), 0)).replace(b'"epoch": 0', b'"epoch": ' + b"9" * 5000),
    "deep nesting": DEEP,
    "a file a list": with_changes((("checkpoints", 0, "file"), ["ckpt-00002.keras"])),
    "latest a list": with_changes((("latest",), ["ckpt-00003.keras"])),
    "monitor a list": with_changes((("monitor",), [])),
    "mode a number": with_changes((("mode",), 1)),
    "mode unknown": with_changes((("mode",), "lowest")),
    "a parent directory": with_changes((("checkpoints", 0, "file"), "../ckpt-00002.keras")),
    "an absolute path": with_changes((("checkpoints", 0, "file"), "/etc/passwd")),
    "a subdirectory": with_changes((("checkpoints", 0, "file"), "sub/ckpt-00002.keras")),
    "another file": with_changes((("checkpoints", 0, "file"), "checkpoint.json")),
    "a long name": with_changes((("checkpoints", 0, "file"), "ckpt-" + "1" * 5000 + ".keras")),
    "an epoch unlike the name": with_changes((("checkpoints", 0, "epoch"), 7)),
    "a file twice": with_changes((("checkpoints", 1), GOOD["checkpoints"][0]), (("latest",), "ckpt-00002.keras")),
    "latest not listed": with_changes((("latest",), "ckpt-00009.keras")),
    "best not listed": with_changes((("best",), "ckpt-00001.keras")),
    "abandoned a string": with_changes((("abandoned",), "ckpt-00009.keras")),
    "abandoned outside": with_changes((("abandoned",), ["../ckpt-00009.keras"])),
    "abandoned and listed": with_changes((("abandoned",), ["ckpt-00003.keras"])),
    "abandoned holds a list": with_changes((("abandoned",), [["ckpt-00009.keras"] * 1000])),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_index_is_a_damaged_index(data):
    with pytest.raises(DamagedIndexError) as raised:
        parse_index(data, "run/checkpoint.json")
    error = raised.value
    assert isinstance(error, FormatError) and isinstance(error, ValueError)
    assert str(error).startswith("The checkpoint index run/checkpoint.json is damaged (")
    assert 0 < len(error.reason) <= 200


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
places = st.sampled_from(
    [("format",), ("schema_version",), ("monitor",), ("mode",), ("latest",), ("best",), ("checkpoints",), ("abandoned",),
     ("checkpoints", 0), ("checkpoints", 1, "file"), ("checkpoints", 0, "epoch"), ("checkpoints", 1, "value")]
)


@given(st.lists(st.tuples(places, json_values), min_size=1, max_size=3))
def test_any_value_anywhere_parses_or_is_damaged(changes):
    try:
        data = with_changes(*changes)
    except (TypeError, IndexError, KeyError):  # an earlier change removed the place of a later one
        return
    try:
        index = parse_index(data)
    except DamagedIndexError:
        return
    for entry in index.entries:
        assert epoch_of(entry.file) == entry.epoch and "/" not in entry.file
        assert entry.value is None or isinstance(entry.value, float)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_damaged(data):
    try:
        parse_index(data)
    except DamagedIndexError:
        pass


def test_checkpoint_names_hold_their_epoch_and_nothing_else():
    assert [epoch_of(checkpoint_name(e)) for e in (0, 7, 12345, 10**19)] == [0, 7, 12345, 10**19]
    for name in ("ckpt-1.keras", "ckpt-00001.keras.nnsave.json", "x/ckpt-00001.keras", "ckpt-00001.KERAS", "ckpt-" + "1" * 21 + ".keras"):
        assert epoch_of(name) is None, name


def test_docstring_examples():
    results = doctest.testmod(nnsave.checkpoint.index, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 4 and results.failed == 0
