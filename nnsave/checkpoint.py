"""Training checkpoints: a Keras callback, an index, retention, and a torn-proof resume.

A checkpoint directory written by :class:`Checkpointer` looks like this::

    runs/digits/
      checkpoint.json                 the index: kept checkpoints, latest, best
      ckpt-00004.keras                a whole model (architecture, weights, optimizer)
      ckpt-00004.keras.nnsave.json    its manifest: sha256, versions, epoch and logs
      ckpt-00006.keras
      ckpt-00006.keras.nnsave.json

Every file appears atomically (see :mod:`nnsave.storage`), and one epoch's
steps run in an order chosen so that a crash between any two of them leaves a
directory that :func:`nnsave.latest_checkpoint` still reads correctly:

1. save ``ckpt-NNNNN.keras`` and its manifest;
2. decide, with pure retention policies, which checkpoints to keep;
3. rewrite ``checkpoint.json``;
4. delete what retention dropped.

Readers never trust the index blindly. They order every checkpoint they can
find by epoch, newest first, and take the first whose bytes match its
manifest, warning with :class:`CheckpointFallbackWarning` whenever that is not
what the index names. The same reader understands TensorFlow's ``checkpoint``
state file, written by ``tf.train.CheckpointManager`` and by TF1's
``tf.train.Saver``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import functools
from typing import TYPE_CHECKING

from . import api, artifact, legacy, storage
from .report import ArtifactInfo
from .trust import Integrity
from .errors import FormatError, IntegrityError, NNSaveError

__all__ = [
    "INDEX_NAME",
    "TF_STATE_NAME",
    "Checkpointer",
    "CheckpointEntry",
    "CheckpointStatus",
    "CheckpointFallbackWarning",
    "RetentionPolicy",
    "keep_latest_n",
    "keep_best",
    "any_of",
    "plan_retention",
    "checkpoint_name",
    "latest_checkpoint",
    "resume",
    "list_checkpoints",
    "restore_tf_checkpoint",
]

#: The index that :class:`Checkpointer` keeps in its directory.
INDEX_NAME = "checkpoint.json"
TF_STATE_NAME = legacy.TF_STATE_NAME
INDEX_FORMAT = "nnsave-checkpoint-index"
INDEX_SCHEMA_VERSION = 1
_MAX_INDEX_BYTES = 16 << 20
_CHECKPOINT_FILE = re.compile(r"ckpt-(\d{5,})\.keras")
_TRAILING_NUMBER = re.compile(r"-(\d+)$")
_MODES = ("min", "max")

if TYPE_CHECKING:
    import keras

PathLike = str | os.PathLike[str]
T = TypeVar("T")


class CheckpointFallbackWarning(UserWarning):
    """A checkpoint directory was torn, and an older or unindexed checkpoint was used."""


def checkpoint_name(epoch: int) -> str:
    """The file name :class:`Checkpointer` gives the checkpoint of ``epoch``."""
    return f"ckpt-{epoch:05d}.keras"


# --------------------------------------------------------------------------- retention


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
    _check_count("n", n)

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
    _check_count("n", n)
    _check_mode(mode)

    def policy(entries: Sequence[CheckpointEntry]) -> list[bool]:
        scored = [i for i, entry in enumerate(entries) if entry.value is not None]
        sign = 1.0 if mode == "min" else -1.0
        ranked = sorted(scored, key=lambda i: (sign * entries[i].value, -entries[i].epoch))
        best = set(ranked[:n])
        return [i in best for i in range(len(entries))]

    return policy


# Checkpointer's keep_best flag shadows the function inside its __init__.
_keep_best_policy = keep_best


def any_of(*policies: RetentionPolicy) -> RetentionPolicy:
    """Keep a checkpoint if any of ``policies`` keeps it."""
    if not policies:
        raise ValueError("any_of needs at least one policy.")

    def policy(entries: Sequence[CheckpointEntry]) -> list[bool]:
        votes = [rule(entries) for rule in policies]
        return [any(column) for column in zip(*votes)] if entries else []

    return policy


def plan_retention(
    entries: Sequence[CheckpointEntry], policy: RetentionPolicy
) -> tuple[list[CheckpointEntry], list[CheckpointEntry]]:
    """Split ``entries`` into (kept, dropped), both in epoch order.

    The newest checkpoint is kept whatever the policy says: a resume must
    always find the state training reached last.
    """
    ordered = sorted(entries, key=lambda entry: entry.epoch)
    flags = policy(ordered)
    if len(flags) != len(ordered):
        raise ValueError(f"A retention policy returned {len(flags)} flags for {len(ordered)} checkpoints.")
    if ordered:
        flags[-1] = True
    kept = [entry for entry, keep in zip(ordered, flags) if keep]
    dropped = [entry for entry, keep in zip(ordered, flags) if not keep]
    return kept, dropped


# --------------------------------------------------------------------------- the index


@dataclass(frozen=True)
class _Index:
    entries: list[CheckpointEntry]
    latest: str | None
    best: str | None
    monitor: str | None
    mode: str


class _DamagedIndex(Exception):
    """The index exists but cannot be used; the message says why."""


def _index_document(index: _Index) -> str:
    document = {
        "format": INDEX_FORMAT,
        "schema_version": INDEX_SCHEMA_VERSION,
        "monitor": index.monitor,
        "mode": index.mode,
        "latest": index.latest,
        "best": index.best,
        "checkpoints": [{"file": e.file, "epoch": e.epoch, "value": e.value} for e in index.entries],
    }
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def _parse_index(data: bytes) -> _Index:
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _DamagedIndex(f"not valid JSON: {error}") from None
    if not isinstance(document, dict) or document.get("format") != INDEX_FORMAT:
        raise _DamagedIndex("not an nnsave checkpoint index")
    if document.get("schema_version") != INDEX_SCHEMA_VERSION:
        raise _DamagedIndex(f"schema version {document.get('schema_version')!r} is not {INDEX_SCHEMA_VERSION}")
    rows = document.get("checkpoints")
    if not isinstance(rows, list):
        raise _DamagedIndex("'checkpoints' is not a list")
    entries = []
    for row in rows:
        if not isinstance(row, dict):
            raise _DamagedIndex("a checkpoint entry is not an object")
        file, epoch, value = row.get("file"), row.get("epoch"), row.get("value")
        # The index decides what retention deletes, so a name must be one of
        # ours and must not point outside the directory.
        if not isinstance(file, str) or not _CHECKPOINT_FILE.fullmatch(file):
            raise _DamagedIndex(f"entry file {file!r} is not a checkpoint name like {checkpoint_name(1)!r}")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise _DamagedIndex(f"entry {file!r} has an invalid epoch {epoch!r}")
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise _DamagedIndex(f"entry {file!r} has a non-numeric value {value!r}")
        entries.append(CheckpointEntry(file, epoch, None if value is None else float(value)))
    names = {entry.file for entry in entries}
    latest, best = document.get("latest"), document.get("best")
    for key, name in (("latest", latest), ("best", best)):
        if name is not None and name not in names:
            raise _DamagedIndex(f"{key!r} names {name!r}, which the index does not list")
    mode = document.get("mode")
    monitor = document.get("monitor")
    if mode not in _MODES or not (monitor is None or isinstance(monitor, str)):
        raise _DamagedIndex("'monitor' or 'mode' is invalid")
    return _Index(entries, latest, best, monitor, mode)


def _read_index(directory: Path) -> _Index | None:
    """The parsed index, None if there is none; :class:`_DamagedIndex` if it is unusable."""
    location = directory / INDEX_NAME
    if not location.exists():
        return None
    try:
        return _parse_index(storage.read_small_file(location, _MAX_INDEX_BYTES))
    except (OSError, ValueError) as error:
        raise _DamagedIndex(str(error)) from None


def _write_index(directory: Path, index: _Index) -> None:
    with storage.transaction(directory) as pending:
        pending.write_bytes(directory / INDEX_NAME, _index_document(index).encode("utf-8"))


def _best_of(entries: Sequence[CheckpointEntry], mode: str) -> str | None:
    flags = keep_best(1, mode=mode)(entries)
    return next((entry.file for entry, best in zip(entries, flags) if best), None)


# --------------------------------------------------------------------------- the callback


class _Checkpointer:
    """Save the whole model every few epochs, keep a few, and index them.

    ``nnsave.Checkpointer`` is this class combined with
    ``keras.callbacks.Callback``, so pass it to ``model.fit(callbacks=[...])``.

    Each save goes through :func:`nnsave.save` as ``ckpt-{epoch:05d}.keras``
    (architecture, weights and optimizer state), with the epoch and that
    epoch's logs in the manifest's metadata. ``epoch`` counts completed
    epochs, so it is exactly the ``initial_epoch`` to resume from.

    Parameters
    ----------
    directory : str or os.PathLike
        Where the checkpoints go; created when training starts if missing.
        Leftover temporary files of interrupted saves are removed then.
    every_n_epochs : int, default 1
        Save after every epoch whose count is a multiple of this.
    max_to_keep : int, default 5
        Keep the newest ``max_to_keep`` checkpoints and delete older ones.
        The newest checkpoint is never deleted.
    monitor : str, optional
        A key of the epoch logs, such as ``"val_loss"``, recorded in the index
        for each checkpoint; required by ``keep_best``.
    mode : {"min", "max"}, default "min"
        Whether a lower or a higher ``monitor`` value is better.
    keep_best : bool, default False
        Also keep the checkpoint with the best ``monitor`` value, beyond
        ``max_to_keep`` if need be.

    Raises
    ------
    ValueError
        An argument is out of range; or, when a checkpoint is due,
        ``monitor`` is not in that epoch's logs (the message lists the keys
        that are).

    Warns
    -----
    CheckpointFallbackWarning
        A save removed checkpoints of later epochs left by an earlier run.

    Notes
    -----
    Saving epoch ``e`` into a directory that holds checkpoints of epochs after
    ``e`` means training was restarted from an earlier point; those later
    checkpoints belong to the abandoned run and are deleted, with a warning,
    before the new one is written.

    Examples
    --------
    >>> ckpt = nnsave.Checkpointer("runs/digits", every_n_epochs=2, monitor="val_loss", keep_best=True)  # doctest: +SKIP
    >>> model.fit(X, y, validation_split=0.2, epochs=10, callbacks=[ckpt])  # doctest: +SKIP
    >>> model, initial_epoch = nnsave.resume("runs/digits")  # doctest: +SKIP
    >>> model.fit(X, y, validation_split=0.2, epochs=20, initial_epoch=initial_epoch)  # doctest: +SKIP
    """

    # Set by keras.callbacks.Callback.set_model when fit() starts.
    model: Any

    def __init__(
        self,
        directory: PathLike,
        *,
        every_n_epochs: int = 1,
        max_to_keep: int = 5,
        monitor: str | None = None,
        mode: str = "min",
        keep_best: bool = False,
    ) -> None:
        super().__init__()
        _check_count("every_n_epochs", every_n_epochs)
        _check_count("max_to_keep", max_to_keep)
        _check_mode(mode)
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise ValueError(f"monitor must be a key of the epoch logs such as 'val_loss', not {monitor!r}.")
        if keep_best and monitor is None:
            raise ValueError("keep_best=True needs monitor=..., the log key that decides which checkpoint is best.")
        self.directory = Path(directory)
        if self.directory.exists() and not self.directory.is_dir():
            raise NotADirectoryError(
                errno.ENOTDIR, f"{self.directory} is a file; Checkpointer needs a directory", str(self.directory)
            )
        self.every_n_epochs = every_n_epochs
        self.max_to_keep = max_to_keep
        self.monitor = monitor
        self.mode = mode
        self.keep_best = keep_best
        rules = [keep_latest_n(max_to_keep)]
        if keep_best:
            rules.append(_keep_best_policy(1, mode=mode))
        self._policy = any_of(*rules)
        self._entries: list[CheckpointEntry] = []

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        storage.make_directory(self.directory)
        with storage.directory_lock(self.directory):
            artifact.recover(self.directory)
        self._entries = self._existing_entries()

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        completed = epoch + 1
        if completed % self.every_n_epochs:
            return
        self.save(completed, logs or {})

    def save(self, epoch: int, logs: Mapping[str, Any]) -> Path:
        """Save the model as the checkpoint of ``epoch``, then apply retention.

        ``fit`` calls this through the callback; call it yourself only to
        save outside ``fit``.
        """
        plain_logs = _plain_logs(logs)
        value = self._monitored_value(plain_logs)
        if not self.directory.is_dir():
            storage.make_directory(self.directory)
        # Another process may checkpoint into the same directory: take turns,
        # and start from what the index says now rather than from memory.
        with storage.directory_lock(self.directory):
            self._entries = self._existing_entries()
            return self._save_locked(epoch, plain_logs, value)

    def _save_locked(self, epoch: int, plain_logs: dict[str, Any], value: float | None) -> Path:
        self._forget_later_epochs(epoch)
        name = checkpoint_name(epoch)
        metadata = {"epoch": epoch, "monitor": self.monitor, "logs": plain_logs}
        path = api.save(self.model, self.directory / name, metadata=metadata)
        entries = [entry for entry in self._entries if entry.epoch != epoch]
        entries.append(CheckpointEntry(name, epoch, value))
        kept, dropped = plan_retention(entries, self._policy)
        best = _best_of(kept, self.mode) if self.monitor else None
        _write_index(self.directory, _Index(kept, name, best, self.monitor, self.mode))
        for entry in dropped:
            artifact.remove_pair(self.directory / entry.file)
        self._entries = kept
        return path

    def _monitored_value(self, logs: Mapping[str, Any]) -> float | None:
        if self.monitor is None:
            return None
        if self.monitor not in logs:
            available = ", ".join(sorted(logs)) or "(none)"
            hint = " Pass validation data to fit() to get 'val_' keys." if self.monitor.startswith("val_") else ""
            raise ValueError(
                f"Checkpointer(monitor={self.monitor!r}): this epoch's logs have no such key. "
                f"Available keys: {available}.{hint}"
            )
        value = logs[self.monitor]
        return value if isinstance(value, float) else None

    def _forget_later_epochs(self, epoch: int) -> None:
        later = sorted(
            {entry.file for entry in self._entries if entry.epoch > epoch}
            | {path.name for path, found in _checkpoint_files(self.directory).items() if found > epoch}
        )
        if not later:
            return
        warnings.warn(
            f"{self.directory}: saving epoch {epoch} over a run that went further; deleting "
            f"its later checkpoints {', '.join(later)}.",
            CheckpointFallbackWarning,
            stacklevel=3,
        )
        # Delete before the index is rewritten: should the process die in
        # between, the index names missing files, which readers skip, rather
        # than leaving checkpoints of an abandoned run that look newest.
        for name in later:
            artifact.remove_pair(self.directory / name)
        self._entries = [entry for entry in self._entries if entry.epoch <= epoch]

    def _existing_entries(self) -> list[CheckpointEntry]:
        """What earlier runs left here, so that retention covers it too."""
        try:
            index = _read_index(self.directory)
        except _DamagedIndex:
            index = None
        listed = {}
        if index is not None:
            same_metric = index.monitor == self.monitor and index.mode == self.mode
            for entry in index.entries:
                listed[entry.file] = entry if same_metric else CheckpointEntry(entry.file, entry.epoch)
        for path, epoch in _checkpoint_files(self.directory).items():
            listed.setdefault(path.name, CheckpointEntry(path.name, epoch))
        return [entry for entry in listed.values() if (self.directory / entry.file).exists()]


@functools.cache
def _checkpointer_class() -> type:
    import keras

    class Checkpointer(_Checkpointer, keras.callbacks.Callback):
        __doc__ = _Checkpointer.__doc__

    Checkpointer.__module__, Checkpointer.__qualname__ = __name__, "Checkpointer"
    return Checkpointer


def __getattr__(name: str) -> Any:
    # Checkpointer must subclass keras.callbacks.Callback, and importing Keras
    # takes seconds. Building the class on first use keeps the rest of this
    # module, and with it latest_checkpoint and `nnsave ls`, quick to import.
    if name == "Checkpointer":
        return _checkpointer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- finding checkpoints


@dataclass(frozen=True)
class _Candidate:
    path: Path
    epoch: int | None
    kind: str  # "keras" or "tf"


@dataclass
class _Survey:
    """Everything a directory holds that could be a checkpoint, newest first."""

    directory: Path
    candidates: list[_Candidate] = field(default_factory=list)
    expected: Path | None = None  # what the index or state file names as latest
    notes: list[str] = field(default_factory=list)
    index: _Index | None = None


def _checkpoint_files(directory: Path) -> dict[Path, int]:
    found = {}
    for path in directory.iterdir():
        match = _CHECKPOINT_FILE.fullmatch(path.name)
        if match and not storage.is_temporary(path):
            found[path] = int(match.group(1))
    return found


def _survey(directory: PathLike) -> _Survey:
    directory = Path(directory)
    if not directory.exists():
        raise FileNotFoundError(
            errno.ENOENT,
            f"The checkpoint directory {directory} does not exist. Check the path; "
            "Checkpointer creates it when training starts",
            str(directory),
        )
    if not directory.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR,
            f"{directory} is a file, not a checkpoint directory. Load a single file with nnsave.load",
            str(directory),
        )
    survey = _Survey(directory)
    leftovers = sorted(path.name for path in directory.iterdir() if storage.is_temporary(path))
    if leftovers:
        survey.notes.append(f"ignored {len(leftovers)} temporary file(s) of an interrupted save ({leftovers[0]}, ...)")
    survey.candidates += _keras_candidates(survey)
    survey.candidates += _tf_candidates(survey)
    return survey


def _keras_candidates(survey: _Survey) -> list[_Candidate]:
    directory = survey.directory
    epochs = {path.name: epoch for path, epoch in _checkpoint_files(directory).items()}
    try:
        survey.index = _read_index(directory)
    except _DamagedIndex as problem:
        survey.notes.append(f"{INDEX_NAME} is damaged ({problem})")
    else:
        if survey.index is None and epochs:
            survey.notes.append(f"{INDEX_NAME} is missing")
    if survey.index is not None:
        for entry in survey.index.entries:
            epochs.setdefault(entry.file, entry.epoch)
        if survey.index.latest:
            survey.expected = directory / survey.index.latest
    ordered = sorted(epochs.items(), key=lambda item: item[1], reverse=True)
    return [_Candidate(directory / name, epoch, "keras") for name, epoch in ordered]


def _tf_candidates(survey: _Survey) -> list[_Candidate]:
    directory = survey.directory
    state = directory / TF_STATE_NAME
    named: list[Path] = []
    if state.is_file():
        try:
            named = legacy.parse_tf_state(storage.read_small_file(state, _MAX_INDEX_BYTES), directory)
        except (OSError, ValueError, SyntaxError) as problem:
            survey.notes.append(f"TensorFlow's {TF_STATE_NAME} file is damaged ({problem})")
    prefixes = sorted(
        (path.with_name(path.name[: -len(legacy.INDEX_SUFFIX)]) for path in directory.glob("*" + legacy.INDEX_SUFFIX)),
        key=lambda prefix: (_step_of(prefix) or -1, _mtime(prefix)),
        reverse=True,
    )
    if prefixes and not state.exists():
        survey.notes.append(f"TensorFlow's {TF_STATE_NAME} file is missing")
    if named and survey.expected is None:
        survey.expected = named[0]
    ordered = list(dict.fromkeys([*named, *prefixes]))
    return [_Candidate(prefix, _step_of(prefix), "tf") for prefix in ordered]


def _step_of(prefix: Path) -> int | None:
    match = _TRAILING_NUMBER.search(prefix.name)
    return int(match.group(1)) if match else None


def _mtime(prefix: Path) -> float:
    try:
        return (prefix.parent / (prefix.name + legacy.INDEX_SUFFIX)).stat().st_mtime
    except OSError:
        return 0.0


class _Unusable(Exception):
    """This candidate cannot be used; the message says why."""


def _check_candidate(candidate: _Candidate) -> ArtifactInfo | None:
    """The verified facts of a usable candidate; :class:`_Unusable` otherwise."""
    if candidate.kind == "tf":
        _, problem = legacy.checkpoint_files(candidate.path)
        if problem:
            raise _Unusable(problem)
        return None
    if not candidate.path.is_file():
        raise _Unusable("listed in the index, but the file is gone")
    # The same test as nnsave.verify, with a reason short enough for a warning.
    try:
        info = api.inspect(candidate.path)
    except (NNSaveError, OSError) as error:
        raise _Unusable(_first_sentence(str(error))) from None
    if info.integrity is not Integrity.INTACT:
        raise _Unusable(_short_problem(info))
    return info


def _short_problem(info: ArtifactInfo) -> str:
    if info.integrity is Integrity.NO_MANIFEST:
        return "it has no manifest, so it cannot be verified"
    return f"it does not match its manifest ({_first_sentence(info.problem or 'mismatch')})"


def _first_usable(survey: _Survey, use: Callable[[_Candidate], T]) -> tuple[_Candidate, T] | None:
    """Walk the candidates newest first; warn if the answer is not the expected one."""
    skipped = []
    chosen = None
    for candidate in survey.candidates:
        try:
            chosen = (candidate, use(candidate))
            break
        except _Unusable as reason:
            skipped.append(f"{candidate.path.name}: {reason}")
    notes = list(survey.notes)
    if skipped:
        notes.append("skipped " + "; ".join(skipped))
    if chosen and survey.expected is not None and chosen[0].path != survey.expected and not skipped:
        notes.append(f"the index names {survey.expected.name}, but {chosen[0].path.name} is newer")
    if notes:
        outcome = f"using {chosen[0].path.name}" if chosen else "no usable checkpoint is left"
        warnings.warn(
            f"The checkpoint directory {survey.directory} is torn: {'; '.join(notes)}. {outcome.capitalize()}.",
            CheckpointFallbackWarning,
            stacklevel=3,
        )
    return chosen


def latest_checkpoint(directory: PathLike) -> Path | None:
    """The newest usable checkpoint in ``directory``, or None if there is none.

    nnsave's own checkpoints (``ckpt-NNNNN.keras``, listed in
    ``checkpoint.json``) come first; a ``.keras`` checkpoint is usable when it
    matches its manifest. Failing those, TensorFlow's ``checkpoint`` state
    file is read (as ``tf.train.latest_checkpoint`` would, without importing
    TensorFlow), and the newest complete prefix is returned.

    Parameters
    ----------
    directory : str or os.PathLike
        A directory written by :class:`Checkpointer`, ``tf.train.CheckpointManager``
        or TF1's ``tf.train.Saver``.

    Returns
    -------
    pathlib.Path or None
        A ``.keras`` file, or a TensorFlow checkpoint prefix such as
        ``dir/model.ckpt-95`` (give it to ``saver.restore``,
        ``checkpoint.restore`` or :mod:`nnsave.legacy`).

    Raises
    ------
    FileNotFoundError
        ``directory`` does not exist.
    NotADirectoryError
        ``directory`` is a file.

    Warns
    -----
    CheckpointFallbackWarning
        The directory is torn (an interrupted save, a checkpoint deleted or
        damaged by hand, a missing, stale or damaged index) and the answer is
        the newest checkpoint that is still intact.

    Examples
    --------
    >>> nnsave.latest_checkpoint("runs/digits")  # doctest: +SKIP
    PosixPath('runs/digits/ckpt-00010.keras')
    """
    found = _first_usable(_survey(directory), _check_candidate)
    return found[0].path if found else None


def resume(directory: PathLike, *, trusted: bool = False) -> tuple[keras.Model, int]:
    """Load the newest usable checkpoint and the epoch to continue from.

    The model comes back compiled, with its optimizer state, so that
    ``model.fit(..., initial_epoch=initial_epoch, epochs=N)`` carries on
    exactly where training stopped.

    Parameters
    ----------
    directory : str or os.PathLike
        A directory written by :class:`Checkpointer`.
    trusted : bool, default False
        Passed to :func:`nnsave.load`.

    Returns
    -------
    model : keras.Model
    initial_epoch : int
        The number of epochs the checkpoint had completed.

    Raises
    ------
    FileNotFoundError
        ``directory`` does not exist, or holds no checkpoint.
    IntegrityError
        It holds checkpoints, but none matches its manifest.
    FormatError
        The newest usable checkpoint is a TensorFlow one; restore it with
        :func:`restore_tf_checkpoint` or :mod:`nnsave.legacy`.

    Warns
    -----
    CheckpointFallbackWarning
        As for :func:`nnsave.latest_checkpoint`.

    Examples
    --------
    >>> model, initial_epoch = nnsave.resume("runs/digits")  # doctest: +SKIP
    >>> model.fit(X, y, epochs=20, initial_epoch=initial_epoch, callbacks=[nnsave.Checkpointer("runs/digits")])  # doctest: +SKIP
    """
    survey = _survey(directory)

    def load(candidate: _Candidate) -> tuple[keras.Model, int]:
        info = _check_candidate(candidate)
        if candidate.kind == "tf":
            raise FormatError(
                f"The newest checkpoint in {survey.directory} is the TensorFlow checkpoint "
                f"{candidate.path.name}, which holds variables but no model. Build the model, "
                "then restore it with nnsave.restore_tf_checkpoint(checkpoint, manager), "
                "or copy TF1 weights with nnsave.legacy.assign_tf1_weights."
            )
        try:
            model = api.load(candidate.path, trusted=trusted)
        except (IntegrityError, FileNotFoundError) as error:
            # Changed between the check and the load; an older one may still do.
            raise _Unusable(_first_sentence(str(error))) from None
        epoch = info.metadata.get("epoch") if info else None
        if not isinstance(epoch, int) or isinstance(epoch, bool):
            epoch = candidate.epoch or 0
        return model, epoch

    found = _first_usable(survey, load)
    if found is not None:
        return found[1]
    if survey.candidates:
        raise IntegrityError(
            f"{survey.directory} holds {len(survey.candidates)} checkpoint(s), but none is intact "
            "(see the warning above). Restore one from a backup or train from scratch."
        )
    raise FileNotFoundError(
        errno.ENOENT,
        f"{survey.directory} holds no checkpoint (no {checkpoint_name(1).replace('00001', 'NNNNN')} "
        f"files, no {INDEX_NAME}, no TensorFlow {TF_STATE_NAME} file). Train with "
        "callbacks=[nnsave.Checkpointer(directory)] first",
        str(survey.directory),
    )


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class CheckpointStatus:
    """One row of :func:`nnsave.list_checkpoints` (and of ``nnsave ls``).

    Attributes
    ----------
    path : pathlib.Path
        A ``.keras`` file or a TensorFlow checkpoint prefix.
    kind : str
        ``"keras"`` or ``"tf"``.
    epoch : int or None
        Completed epochs (for TensorFlow, the prefix's trailing step number).
    metric : str or None
        The monitored key, or ``"loss"`` when nothing was monitored.
    value : float or None
        That metric's value at the checkpoint.
    size : int
        Bytes on disk (all files of a TensorFlow checkpoint).
    verified : bool
        ``.keras``: it matches its manifest. TensorFlow: every file is present.
    problem : str or None
        Why ``verified`` is False.
    latest, best : bool
        Whether :func:`nnsave.latest_checkpoint` would pick it; whether the index calls it best.
    """

    path: Path
    kind: str
    epoch: int | None
    metric: str | None
    value: float | None
    size: int
    verified: bool
    problem: str | None = None
    latest: bool = False
    best: bool = False


def list_checkpoints(directory: PathLike) -> list[CheckpointStatus]:
    """Describe every checkpoint in ``directory``, oldest first, verifying each.

    Nothing is loaded: ``.keras`` checkpoints are hashed and their manifests
    read; TensorFlow checkpoints are checked for missing files.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        As for :func:`nnsave.latest_checkpoint`.

    Warns
    -----
    CheckpointFallbackWarning
        The index or TensorFlow's state file is missing or damaged, or an
        interrupted save left temporary files.
    """
    survey = _survey(directory)
    if survey.notes:
        warnings.warn(
            f"The checkpoint directory {survey.directory} is torn: {'; '.join(survey.notes)}.",
            CheckpointFallbackWarning,
            stacklevel=2,
        )
    index = survey.index
    rows = [_status(candidate, index) for candidate in survey.candidates]
    latest = next((row.path for row in rows if row.verified), None)
    rows = [replace(row, latest=row.path == latest) for row in rows]
    return sorted(rows, key=lambda row: (row.kind != "keras", row.epoch if row.epoch is not None else -1))


def _status(candidate: _Candidate, index: _Index | None) -> CheckpointStatus:
    if candidate.kind == "tf":
        files, problem = legacy.checkpoint_files(candidate.path)
        size = sum(path.stat().st_size for path in files)
        return CheckpointStatus(candidate.path, "tf", candidate.epoch, None, None, size, problem is None, problem)
    if not candidate.path.is_file():
        return CheckpointStatus(
            candidate.path, "keras", candidate.epoch, None, None, 0, False, "listed in the index, but the file is gone"
        )
    try:
        info = api.inspect(candidate.path)
    except (NNSaveError, OSError) as error:
        return CheckpointStatus(
            candidate.path, "keras", candidate.epoch, None, None, candidate.path.stat().st_size, False,
            _first_sentence(str(error)),
        )
    metadata = info.metadata
    logs = metadata.get("logs") if isinstance(metadata.get("logs"), dict) else {}
    metric = metadata.get("monitor") or (index.monitor if index else None) or "loss"
    value = logs.get(metric)
    epoch = metadata.get("epoch", candidate.epoch)
    problem = info.problem if info.integrity is not Integrity.INTACT else None
    if info.integrity is Integrity.NO_MANIFEST:
        problem = "no manifest"
    return CheckpointStatus(
        candidate.path, "keras", epoch if isinstance(epoch, int) else candidate.epoch, metric,
        value if isinstance(value, (int, float)) and not isinstance(value, bool) else None,
        info.size, info.integrity is Integrity.INTACT, problem,
        best=bool(index and index.best == candidate.path.name),
    )


# --------------------------------------------------------------------------- custom loops


def restore_tf_checkpoint(checkpoint: Any, manager: Any) -> Path | None:
    """Restore the newest intact checkpoint of a ``tf.train.CheckpointManager``, exactly.

    A custom training loop resumes exactly when everything that shapes the
    next step comes back: the model's weights, the optimizer's slots and
    step counter, and the epoch (or step) from which the data order is
    derived. This helper restores ``checkpoint`` from the newest complete
    checkpoint of ``manager``, skipping torn ones with a warning, and then
    insists that every value in the file found a variable and every
    variable got a value, so nothing is silently left at its initial value.

    Build every variable before calling it: give the model a ``keras.Input``
    and call ``optimizer.build(model.trainable_variables)``. Otherwise the
    optimizer's slots would be restored lazily, or not at all.

    Parameters
    ----------
    checkpoint : tf.train.Checkpoint
        Holds the model, the optimizer and a counter such as
        ``epoch=tf.Variable(0, dtype=tf.int64)``.
    manager : tf.train.CheckpointManager
        The manager that saves ``checkpoint``.

    Returns
    -------
    pathlib.Path or None
        The prefix restored, or None if there was no checkpoint yet (a fresh start).

    Raises
    ------
    NNSaveError
        The checkpoint and the objects do not match (an unbuilt optimizer,
        a different architecture); the message lists what did not match.

    Warns
    -----
    CheckpointFallbackWarning
        The newest checkpoint was incomplete or unreadable and an older one was used.

    Examples
    --------
    The recipe, with a data order that depends only on the epoch::

        model = make_model()                              # built: starts with keras.Input
        optimizer = keras.optimizers.Adam(1e-2)
        optimizer.build(model.trainable_variables)
        epoch = tf.Variable(0, dtype=tf.int64)
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch)
        manager = tf.train.CheckpointManager(checkpoint, "runs/loop", max_to_keep=3)
        nnsave.restore_tf_checkpoint(checkpoint, manager)  # None on a fresh start
        while int(epoch) < 10:
            for xb, yb in batches(int(epoch)):            # fixed order, or seeded by the epoch
                train_step(model, optimizer, xb, yb)
            epoch.assign_add(1)
            manager.save(checkpoint_number=int(epoch))
    """
    import tensorflow as tf

    directory = Path(manager.directory)
    if not directory.is_dir():
        return None
    survey = _survey(directory)
    survey.candidates = [candidate for candidate in survey.candidates if candidate.kind == "tf"]

    def restore(candidate: _Candidate) -> None:
        _check_candidate(candidate)
        try:
            status = checkpoint.restore(str(candidate.path))
        except (tf.errors.OpError, ValueError) as error:
            raise _Unusable(_first_sentence(str(error))) from None
        try:
            status.assert_consumed()
        except AssertionError as error:
            # TensorFlow appends the unmatched object's proto; its first line names it.
            first_line = str(error).splitlines()[0].split(": attributes")[0]
            raise NNSaveError(
                f"{candidate.path} does not match the objects being restored ({first_line}). "
                "Build the model (keras.Input) and the optimizer "
                "(optimizer.build(model.trainable_variables)) before restoring, and "
                "track the same objects under the same names as when it was saved."
            ) from None

    found = _first_usable(survey, restore)
    return found[0].path if found else None


# --------------------------------------------------------------------------- helpers


def _plain_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """Epoch logs as JSON can hold them: exact floats, non-finite values as None."""
    plain: dict[str, Any] = {}
    for key, value in logs.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            plain[str(key)] = str(value)
            continue
        plain[str(key)] = number if math.isfinite(number) else None
    return plain


def _check_count(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {value!r}.")


def _check_mode(mode: Any) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode must be 'min' (lower is better, like a loss) or 'max' (like accuracy), not {mode!r}.")


def _first_sentence(text: str) -> str:
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= 160 else sentence[:157] + "..."

