"""``checkpoint.json``: the index of a checkpoint directory, written and parsed defensively.

The index lists the checkpoints that retention kept, which one is the latest
and which the best::

    {
      "format": "nnsave-checkpoint-index",
      "schema_version": 1,
      "monitor": "val_loss",
      "mode": "min",
      "latest": "ckpt-00006.keras",
      "best": "ckpt-00004.keras",
      "checkpoints": [
        {"file": "ckpt-00004.keras", "epoch": 4, "value": 0.31},
        {"file": "ckpt-00006.keras", "epoch": 6, "value": 0.33}
      ],
      "abandoned": []
    }

``abandoned`` names checkpoints of later epochs left by a run that training
was restarted before: they are about to be deleted, and readers use one only
if nothing else is left. (Indexes written before it existed have no such
field, which reads as empty.)

The index decides what retention deletes, and anyone who can write to the
directory can write it, so :func:`parse_index` trusts nothing in it: every
field is checked for its type, and every file it names must be a checkpoint
name (``ckpt-`` and digits, no directory part), which keeps it inside the
directory. The functions here are pure; :mod:`nnsave.checkpoint.folder` does
the reading and writing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import parsing
from ..errors import FormatError
from .retention import MODES, CheckpointEntry, best_entry

__all__ = [
    "INDEX_NAME",
    "INDEX_FORMAT",
    "INDEX_SCHEMA_VERSION",
    "MAX_INDEX_BYTES",
    "Index",
    "DamagedIndexError",
    "checkpoint_name",
    "epoch_of",
    "index_bytes",
    "parse_index",
    "build_index",
    "finite_value",
]

#: The index that :class:`nnsave.Checkpointer` keeps in its directory.
INDEX_NAME = "checkpoint.json"
INDEX_FORMAT = "nnsave-checkpoint-index"
INDEX_SCHEMA_VERSION = 1
#: An index of a thousand checkpoints is about 100 KB; anything far larger is not one.
MAX_INDEX_BYTES = 16 << 20
# Five digits or more, as checkpoint_name writes them; at most twenty, so that
# no name can hold a number too long to convert.
_CHECKPOINT_FILE = re.compile(r"ckpt-(\d{5,20})\.keras")


def checkpoint_name(epoch: int) -> str:
    """The file name :class:`nnsave.Checkpointer` gives the checkpoint of ``epoch``.

    >>> checkpoint_name(4)
    'ckpt-00004.keras'
    """
    return f"ckpt-{epoch:05d}.keras"


def epoch_of(name: str) -> int | None:
    """The epoch in a checkpoint's file name, or None if ``name`` is not one.

    >>> epoch_of("ckpt-00012.keras"), epoch_of("../ckpt-00012.keras"), epoch_of("model.keras")
    (12, None, None)
    """
    match = _CHECKPOINT_FILE.fullmatch(name)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Index:
    """A parsed ``checkpoint.json``."""

    entries: list[CheckpointEntry]
    latest: str | None
    best: str | None
    monitor: str | None
    mode: str
    #: Checkpoints of a run that was restarted from an earlier epoch, to be deleted.
    abandoned: tuple[str, ...] = ()


class DamagedIndexError(FormatError):
    """The index exists but cannot be used; ``reason`` says why in a few words."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(
            f"The checkpoint index {source} is damaged ({reason}). nnsave falls back to "
            "the checkpoint files themselves; the next checkpoint rewrites the index."
        )
        self.reason = reason


def build_index(
    entries: Sequence[CheckpointEntry],
    monitor: str | None,
    mode: str,
    abandoned: Sequence[str] = (),
) -> Index:
    """The index of ``entries``: the newest is the latest, and the best is named when a metric is monitored."""
    ordered = sorted(entries, key=lambda entry: entry.epoch)
    best = best_entry(ordered, mode) if monitor else None
    latest = ordered[-1].file if ordered else None
    return Index(ordered, latest, best.file if best else None, monitor, mode, tuple(abandoned))


def index_bytes(index: Index) -> bytes:
    """The JSON text of ``index``, as it is written to disk."""
    document = {
        "format": INDEX_FORMAT,
        "schema_version": INDEX_SCHEMA_VERSION,
        "monitor": index.monitor,
        "mode": index.mode,
        "latest": index.latest,
        "best": index.best,
        "checkpoints": [{"file": e.file, "epoch": e.epoch, "value": e.value} for e in index.entries],
        "abandoned": list(index.abandoned),
    }
    return (json.dumps(document, indent=2, allow_nan=False) + "\n").encode("utf-8")


def parse_index(data: bytes, source: str = INDEX_NAME) -> Index:
    """Parse an index's bytes; :class:`DamagedIndexError` names what is wrong.

    Examples
    --------
    >>> parse_index(b'{"format": "nnsave-checkpoint-index", "schema_version": 1, "checkpoints": [[]]}')
    Traceback (most recent call last):
    nnsave.checkpoint.index.DamagedIndexError: The checkpoint index checkpoint.json is damaged (...
    """

    def damaged(reason: str) -> DamagedIndexError:
        return DamagedIndexError(source, reason)

    document = parsing.load_json(data, damaged)
    if parsing.optional_field(document, "format", str, damaged) != INDEX_FORMAT:
        raise damaged("it is not an nnsave checkpoint index")
    version = parsing.field(document, "schema_version", int, damaged)
    if version != INDEX_SCHEMA_VERSION:
        raise damaged(f"schema version {version} is not {INDEX_SCHEMA_VERSION}")
    rows = parsing.field(document, "checkpoints", list, damaged)
    entries = [_entry(row, damaged) for row in rows]
    names = [entry.file for entry in entries]
    if len(set(names)) != len(names):
        raise damaged("it lists a checkpoint twice")
    references = {key: parsing.optional_field(document, key, str, damaged) for key in ("latest", "best")}
    for key, name in references.items():
        if name is not None and name not in names:
            raise damaged(f"{key!r} names {name!r}, which the index does not list")
    mode = parsing.field(document, "mode", str, damaged)
    if mode not in MODES:
        raise damaged(f"'mode' is {mode!r}, not one of {', '.join(MODES)}")
    monitor = parsing.optional_field(document, "monitor", str, damaged)
    abandoned = parsing.optional_field(document, "abandoned", list, damaged) or []
    for name in abandoned:
        if not isinstance(name, str) or epoch_of(name) is None or name in names:
            shown = repr(name[:80]) if isinstance(name, str) else f"a {type(name).__name__}"
            raise damaged(f"'abandoned' holds {shown}, which is not a checkpoint name the index does not list")
    return Index(entries, references["latest"], references["best"], monitor, mode, tuple(abandoned))


def _entry(row: Any, damaged: Any) -> CheckpointEntry:
    file = parsing.field(row, "file", str, damaged)
    epoch = parsing.field(row, "epoch", int, damaged)
    value = parsing.optional_field(row, "value", (int, float), damaged)
    # Only checkpoint names, which have no directory part: an index cannot
    # send a reader, or retention's deletions, outside the directory.
    if epoch_of(file) is None:
        raise damaged(f"entry {file[:80]!r} is not a checkpoint name like {checkpoint_name(1)!r}")
    if epoch != epoch_of(file):
        raise damaged(f"entry {file!r} says epoch {epoch}, but its name says {epoch_of(file)}")
    number = finite_value(value)
    if value is not None and number is None:
        raise damaged(f"entry {file!r} has a value that is not a finite number")
    return CheckpointEntry(file, epoch, number)


def finite_value(value: Any) -> float | None:
    """``value`` as a float, or None unless it is a finite number (``True`` is not one).

    >>> finite_value(3), finite_value(float("inf")), finite_value(10**400), finite_value("0.5")
    (3.0, None, None, None)
    """
    if isinstance(value, (bool, str, bytes)):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # not a number, or an int beyond the float range
        return None
    return number if math.isfinite(number) else None
