"""Retention policies are pure functions: checkpoints in, one keep-flag per checkpoint out."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given
from hypothesis import strategies as st

import nnsave.checkpoint.retention
from nnsave.checkpoint import CheckpointEntry, any_of, checkpoint_name, keep_best, keep_latest_n, plan_retention
from nnsave.checkpoint.retention import best_entry
from nnsave.errors import InvalidArgumentError

epoch_lists = st.lists(st.integers(0, 10_000), unique=True, max_size=30)
values = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False))
modes = st.sampled_from(["min", "max"])


@st.composite
def entry_lists(draw):
    epochs = draw(epoch_lists)
    return [CheckpointEntry(checkpoint_name(e), e, draw(values)) for e in epochs]


def kept_by(policy, entries):
    return [entry for entry, keep in zip(entries, policy(entries)) if keep]


def is_at_least_as_good(a, b, mode):
    return a.value <= b.value if mode == "min" else a.value >= b.value


@given(entry_lists(), st.integers(1, 40))
def test_keep_latest_n_keeps_the_newest(entries, n):
    kept = sorted(e.epoch for e in kept_by(keep_latest_n(n), entries))
    assert kept == sorted(e.epoch for e in entries)[-n:] if entries else kept == []


@given(entry_lists(), st.integers(1, 5), modes)
def test_keep_best_keeps_the_best_values(entries, n, mode):
    kept = kept_by(keep_best(n, mode=mode), entries)
    scored = [e for e in entries if e.value is not None]
    assert len(kept) == min(n, len(scored)) and all(e.value is not None for e in kept)
    rest = [e for e in scored if e not in kept]
    assert all(is_at_least_as_good(k, r, mode) for k in kept for r in rest)


@given(entry_lists(), modes)
def test_best_entry_is_the_best_and_the_newest_of_equals(entries, mode):
    best = best_entry(entries, mode)
    scored = [e for e in entries if e.value is not None]
    if not scored:
        assert best is None
        return
    assert all(is_at_least_as_good(best, e, mode) for e in scored)
    equals = [e for e in scored if e.value == best.value]
    assert best.epoch == max(e.epoch for e in equals)


@given(entry_lists(), st.integers(1, 6), modes)
def test_plan_never_drops_the_newest_nor_the_best(entries, n, mode):
    kept, dropped = plan_retention(entries, any_of(keep_latest_n(n), keep_best(1, mode=mode)))
    assert sorted(kept + dropped, key=lambda e: e.epoch) == sorted(entries, key=lambda e: e.epoch)
    assert min(n, len(entries)) <= len(kept) <= n + 1
    if entries:
        assert max(entries, key=lambda e: e.epoch) in kept
    assert all(e in kept for e in kept_by(keep_best(1, mode=mode), entries))
    assert [e.epoch for e in kept] == sorted(e.epoch for e in kept)
    assert [e.epoch for e in dropped] == sorted(e.epoch for e in dropped)


@given(entry_lists(), st.sampled_from([lambda rows: [False] * len(rows), lambda rows: [0] * len(rows)]))
def test_the_newest_survives_a_policy_that_keeps_nothing(entries, policy):
    kept, dropped = plan_retention(entries, policy)
    assert kept == ([max(entries, key=lambda e: e.epoch)] if entries else [])
    assert len(dropped) == max(len(entries) - 1, 0)


@given(entry_lists(), st.sampled_from([-1, 1, 2]))
def test_a_policy_with_the_wrong_number_of_flags_is_refused(entries, surplus):
    # One entry more than hypothesis drew, so that one flag fewer is possible.
    entries = [*entries, CheckpointEntry(checkpoint_name(99_999), 99_999)]

    def sloppy(rows):
        return [True] * (len(rows) + surplus)

    with pytest.raises(ValueError, match=rf"returned {len(entries) + surplus} flags for {len(entries)} checkpoints"):
        plan_retention(entries, sloppy)
    with pytest.raises(ValueError, match="flags for"):
        any_of(keep_latest_n(1), sloppy)(entries)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None, "2"])
def test_counts_must_be_whole_numbers_of_at_least_one(bad):
    with pytest.raises(InvalidArgumentError, match=f"n must be a whole number of at least 1, not {bad!r}"):
        keep_latest_n(bad)
    with pytest.raises(InvalidArgumentError, match="at least 1"):
        keep_best(bad)


def test_other_argument_errors():
    with pytest.raises(InvalidArgumentError, match="mode must be 'min' .* not 'lowest'"):
        keep_best(1, mode="lowest")
    with pytest.raises(InvalidArgumentError, match="at least one policy"):
        any_of()
    # An InvalidArgumentError is a ValueError, as the errors of these calls always were.
    assert issubclass(InvalidArgumentError, ValueError)


def test_docstring_examples():
    results = doctest.testmod(nnsave.checkpoint.retention, optionflags=doctest.ELLIPSIS)
    assert results.attempted >= 3 and results.failed == 0
