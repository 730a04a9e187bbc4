"""Which checkpoints to keep: pure policies, and the plan that applies one.

A policy maps a list of checkpoints to one "keep it?" flag per checkpoint, as
Orbax's preservation policies do. Policies read nothing and delete nothing:
:class:`nnsave.Checkpointer` deletes what the plan drops, and only after the
new index no longer lists it.

Examples
--------
>>> from nnsave.checkpoint import CheckpointEntry, any_of, keep_best, keep_latest_n, plan_retention
>>> entries = [CheckpointEntry(f"ckpt-{e:05d}.keras", e, v) for e, v in [(1, 0.2), (2, 0.5), (3, 0.4), (4, 0.3)]]
>>> kept, dropped = plan_retention(entries, any_of(keep_latest_n(2), keep_best(1)))
>>> [e.epoch for e in kept], [e.epoch for e in dropped]
([1, 3, 4], [2])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError

__all__ = [
    "MODES",
    "CheckpointEntry",
    "RetentionPolicy",
    "keep_latest_n",
    "keep_best",
    "any_of",
    "plan_retention",
    "best_entry",
    "check_count",
    "check_mode",
]

#: Whether a lower or a higher monitored value is better.
MODES = ("min", "max")


@dataclass(frozen=True)
class CheckpointEntry:
    """One kept checkpoint, as the index lists it.

    Attributes
    ----------
    file : str
        The file name, relative to the checkpoint directory.
    epoch : int
        The number of completed epochs when it was saved.
    value : float or None
        The monitored metric at that epoch; None if nothing was monitored or
        the value was not finite.
    """

    file: str
    epoch: int
    value: float | None = None


#: A retention policy maps checkpoints to "keep this one?" flags, one per entry.
RetentionPolicy = Callable[[Sequence[CheckpointEntry]], list[bool]]


def keep_latest_n(n: int) -> RetentionPolicy:
    """Keep the ``n`` checkpoints with the highest epochs.

    Examples
    --------
    >>> from nnsave.checkpoint import CheckpointEntry, keep_latest_n
    >>> entries = [CheckpointEntry(f"ckpt-{e:05d}.keras", e) for e in (1, 2, 3)]
    >>> keep_latest_n(2)(entries)
    [False, True, True]
    """
    check_count("n", n)

    def policy(entries: Sequence[CheckpointEntry]) -> list[bool]:
        newest = set(sorted(range(len(entries)), key=lambda i: entries[i].epoch)[-n:])
        return [i in newest for i in range(len(entries))]

    return policy


def keep_best(n: int = 1, *, mode: str = "min") -> RetentionPolicy:
    """Keep the ``n`` checkpoints whose monitored value is best; ties go to the newer.

    Entries without a value are never among the best.

    Examples
    --------
    >>> from nnsave.checkpoint import CheckpointEntry, keep_best
    >>> entries = [CheckpointEntry("a", 1, 0.5), CheckpointEntry("b", 2, 0.2), CheckpointEntry("c", 3, None)]
    >>> keep_best(1, mode="min")(entries)
    [False, True, False]
    """
    check_count("n", n)
    check_mode(mode)
    sign = 1.0 if mode == "min" else -1.0

    def policy(entries: Sequence[CheckpointEntry]) -> list[bool]:
        scored = [i for i, entry in enumerate(entries) if entry.value is not None]
        ranked = sorted(scored, key=lambda i: (sign * entries[i].value, -entries[i].epoch))  # type: ignore[operator]
        best = set(ranked[:n])
        return [i in best for i in range(len(entries))]

    return policy


def any_of(*policies: RetentionPolicy) -> RetentionPolicy:
    """Keep a checkpoint if any of ``policies`` keeps it."""
    if not policies:
        raise InvalidArgumentError("any_of needs at least one policy.")

    def policy(entries: Sequence[CheckpointEntry]) -> list[bool]:
        votes = [_flags(rule, entries) for rule in policies]
        return [any(column) for column in zip(*votes)] if entries else []

    return policy


def plan_retention(
    entries: Sequence[CheckpointEntry], policy: RetentionPolicy
) -> tuple[list[CheckpointEntry], list[CheckpointEntry]]:
    """Split ``entries`` into (kept, dropped), both in epoch order.

    The newest checkpoint is kept whatever the policy says: a resume must
    always find the state training reached last.

    Raises
    ------
    ValueError
        The policy returned a number of flags other than one per entry.
    """
    ordered = sorted(entries, key=lambda entry: entry.epoch)
    flags = _flags(policy, ordered)
    if ordered:
        flags[-1] = True
    kept = [entry for entry, keep in zip(ordered, flags) if keep]
    dropped = [entry for entry, keep in zip(ordered, flags) if not keep]
    return kept, dropped


def best_entry(entries: Sequence[CheckpointEntry], mode: str) -> CheckpointEntry | None:
    """The entry with the best value (the newer on a tie), or None if none has a value."""
    flags = keep_best(1, mode=mode)(entries)
    return next((entry for entry, best in zip(entries, flags) if best), None)


def _flags(policy: RetentionPolicy, entries: Sequence[CheckpointEntry]) -> list[bool]:
    flags = [bool(flag) for flag in policy(entries)]
    if len(flags) != len(entries):
        raise ValueError(f"A retention policy returned {len(flags)} flags for {len(entries)} checkpoints.")
    return flags


def check_count(name: str, value: Any) -> None:
    """Raise :class:`nnsave.InvalidArgumentError` unless ``value`` is a whole number of at least 1."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidArgumentError(f"{name} must be a whole number of at least 1, not {value!r}.")


def check_mode(mode: Any) -> None:
    """Raise :class:`nnsave.InvalidArgumentError` unless ``mode`` is one of :data:`MODES`."""
    if mode not in MODES:
        raise InvalidArgumentError(
            f"mode must be 'min' (lower is better, like a loss) or 'max' (like accuracy), not {mode!r}."
        )
