"""Finding checkpoints: survey a directory, then walk its checkpoints newest first.

Readers take no lock: training goes on while they read, and a directory
that may be searched but not written (a read-only mount) reads as well as
any. A reader therefore expects the directory to change under it, and
never trusts the index blindly:

1. The *survey* lists every checkpoint it can find, from the file names, the
   index and TensorFlow's ``checkpoint`` state file, ordered newest first
   (those the index marks as abandoned by a restarted run come last), and
   notes anything amiss (a damaged or missing index, a path that leads
   outside the directory).
2. The *walk* takes the first checkpoint that is usable: it matches its
   manifest, its manifest's epoch is its name's, and, when a key was named,
   it is signed with that key.
3. If the walk had to skip anything, or the survey noted anything, the
   files the survey saw are looked at again. If any of them changed, a
   writer was at work (retention deleted a checkpoint, the index was
   replaced, a save was half published): the reader surveys again rather
   than report a fallback that was only a moment of another's save.

What remains after that is real, and is reported with a
:class:`CheckpointFallbackWarning` that names what was skipped and why.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .. import api, artifact, keys, legacy
from ..errors import (
    DirectoryGivenError,
    FileMissingError,
    FormatError,
    IntegrityError,
    NNSaveError,
    NotAFileError,
    PathError,
    UntrustedFileError,
)
from ..formats import handler_for_path
from ..keys import SignatureStatus, SigningKey
from ..manifest import MANIFEST_SUFFIX, Manifest
from ..paths import PathLike
from ..trust import Integrity
from .folder import CheckpointFolder
from .index import INDEX_NAME, MAX_INDEX_BYTES, DamagedIndexError, Index, epoch_of, finite_value, parse_index
from ..errors import CheckpointFallbackWarning, warn_caller

if TYPE_CHECKING:
    import keras

__all__ = [
    "TF_STATE_NAME",
    "CheckpointKind",
    "CheckpointStatus",
    "latest_checkpoint",
    "resume",
    "list_checkpoints",
]

TF_STATE_NAME = legacy.TF_STATE_NAME
#: How often a reader surveys a directory that keeps changing before it answers anyway.
SURVEY_ATTEMPTS = 5
_SURVEY_PAUSE_SECONDS = 0.01

T = TypeVar("T")


class CheckpointKind(str, enum.Enum):
    """Who wrote a checkpoint."""

    #: A ``.keras`` file written by :class:`nnsave.Checkpointer`, with its manifest.
    KERAS = "keras"
    #: A TensorFlow checkpoint prefix (``tf.train.CheckpointManager``, TF1 ``Saver``).
    TF = "tf"


@dataclass(frozen=True)
class Candidate:
    """Something in the directory that could be a checkpoint."""

    path: Path
    epoch: int | None
    kind: CheckpointKind
    #: The index marks it as left by a run that training was restarted before.
    abandoned: bool = False

    @property
    def watched_names(self) -> tuple[str, ...]:
        """The files whose change means a verdict on this candidate may be out of date."""
        name = self.path.name
        if self.kind is CheckpointKind.KERAS:
            return name, name + MANIFEST_SUFFIX
        return (name + legacy.INDEX_SUFFIX,)


@dataclass
class Survey:
    """Everything a directory holds that could be a checkpoint, newest first."""

    folder: CheckpointFolder
    candidates: list[Candidate] = field(default_factory=list)
    #: What the index, or TensorFlow's state file, names as the latest.
    expected: dict[CheckpointKind, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    index: Index | None = None
    fingerprint: tuple[Any, ...] = ()

    def watched_names(self) -> list[str]:
        return [INDEX_NAME, TF_STATE_NAME, *(name for c in self.candidates for name in c.watched_names)]

    def changed(self) -> bool:
        """True if a file this survey saw has changed since."""
        return self.folder.fingerprint(self.watched_names()) != self.fingerprint


class Unusable(Exception):
    """This candidate cannot be used; the message says why in a few words."""

    def __init__(self, reason: str, *, unsigned: bool = False) -> None:
        super().__init__(reason)
        #: Skipped only because the key that was named did not sign it.
        self.unsigned = unsigned


@dataclass(frozen=True)
class Verified:
    """What checking a ``.keras`` checkpoint against its manifest established."""

    manifest: Manifest
    signature: SignatureStatus
    size: int


@dataclass
class Walk(Generic[T]):
    """The outcome of walking a survey's candidates newest first."""

    chosen: Candidate | None = None
    result: T | None = None
    skipped: list[tuple[Candidate, Unusable]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- the survey


def take_survey(folder: CheckpointFolder) -> Survey:
    """List every candidate in ``folder``, newest first, noting anything amiss."""
    survey = Survey(folder)
    names = folder.names()
    # Staging files never become candidates: their names start with a dot.
    # A reader, holding no lock, cannot tell a live save's from a dead one's,
    # so they are not worth a warning either; Checkpointer removes dead ones.
    survey.candidates += _keras_candidates(survey, names)
    if not folder.remote:  # TensorFlow checkpoints are read from local directories only
        survey.candidates += _tf_candidates(survey, names)
    survey.fingerprint = folder.fingerprint(survey.watched_names())
    return survey


def _keras_candidates(survey: Survey, names: list[str]) -> list[Candidate]:
    folder = survey.folder
    epochs = {name: epoch for name in names if (epoch := epoch_of(name)) is not None}
    try:
        survey.index = parse_index(folder.read(INDEX_NAME, MAX_INDEX_BYTES), str(folder.path(INDEX_NAME)))
    except FileMissingError:
        if epochs:
            survey.notes.append(f"{INDEX_NAME} is missing")
    except DamagedIndexError as damage:
        survey.notes.append(f"{INDEX_NAME} is damaged ({damage.reason})")
    except (PathError, ValueError) as error:
        survey.notes.append(f"{INDEX_NAME} is damaged ({why_unreadable(error)})")
    abandoned: set[str] = set()
    if survey.index is not None:
        for entry in survey.index.entries:
            epochs.setdefault(entry.file, entry.epoch)
        if survey.index.latest:
            survey.expected[CheckpointKind.KERAS] = folder.path(survey.index.latest)
        abandoned = {name for name in survey.index.abandoned if name in epochs}
    # Checkpoints of a run that training was restarted before come last:
    # they are used only while the restarted run has none of its own.
    ordered = sorted(epochs.items(), key=lambda item: (item[0] not in abandoned, item[1]), reverse=True)
    return [Candidate(folder.path(name), epoch, CheckpointKind.KERAS, name in abandoned) for name, epoch in ordered]


def _tf_candidates(survey: Survey, names: list[str]) -> list[Candidate]:
    folder = survey.folder
    named: list[Path] = []
    state_found = True
    try:
        state = legacy.parse_tf_state(folder.read(TF_STATE_NAME, legacy.MAX_STATE_BYTES), folder.directory)
    except FileMissingError:
        state_found = False
    except (NNSaveError, OSError, ValueError) as error:
        survey.notes.append(f"TensorFlow's {TF_STATE_NAME} file is damaged ({why_unreadable(error)})")
    else:
        named = state.prefixes
        if state.outside:
            survey.notes.append(
                f"TensorFlow's {TF_STATE_NAME} file names {', '.join(repr(p[:80]) for p in state.outside[:3])}, "
                "outside the directory; ignored"
            )
    on_disk = [folder.path(name[: -len(legacy.INDEX_SUFFIX)]) for name in names if name.endswith(legacy.INDEX_SUFFIX)]
    on_disk.sort(key=lambda prefix: (_step_of(prefix) or -1, folder.modified_ns(prefix.name + legacy.INDEX_SUFFIX)))
    on_disk.reverse()
    if on_disk and not state_found:
        survey.notes.append(f"TensorFlow's {TF_STATE_NAME} file is missing")
    if named:
        survey.expected[CheckpointKind.TF] = named[0]
    ordered = dict.fromkeys([*named, *on_disk])
    return [Candidate(prefix, _step_of(prefix), CheckpointKind.TF) for prefix in ordered]


def _step_of(prefix: Path) -> int | None:
    """The step number TensorFlow appends to a prefix (``model.ckpt-95``), if any."""
    _, dash, number = prefix.name.rpartition("-")
    return int(number) if dash and number.isascii() and number.isdigit() and len(number) <= 20 else None


# --------------------------------------------------------------------------- checking one candidate


def verify_keras(candidate: Candidate, signing_key: SigningKey | None) -> Verified:
    """Check a ``.keras`` checkpoint against its manifest; :class:`Unusable` says why it fails."""
    try:
        with artifact.checked_pair(candidate.path, format_name=handler_for_path(candidate.path).name) as check:
            integrity, problem, manifest, size = check.integrity, check.problem, check.manifest, check.digest.size
    except (NNSaveError, OSError) as error:
        raise Unusable(why_unreadable(error)) from None
    if integrity is Integrity.MISMATCH:
        raise Unusable(f"it does not match its manifest ({problem.value if problem else 'mismatch'})")
    if integrity is Integrity.NO_MANIFEST or manifest is None:
        raise Unusable("it has no manifest, so it cannot be verified")
    recorded = manifest.metadata.get("epoch", candidate.epoch)
    if not isinstance(recorded, int) or isinstance(recorded, bool) or recorded != candidate.epoch:
        raise Unusable(f"its manifest gives the epoch as {_short_repr(recorded)}, but its name says {candidate.epoch}")
    return Verified(manifest, keys.check_signature(manifest, signing_key), size)


def require_signature(verified: Verified, signing_key: SigningKey | None) -> None:
    """Raise :class:`Unusable` unless ``verified`` is signed with ``signing_key``."""
    if verified.signature is not SignatureStatus.VALID:
        owner = signing_key.describe() if signing_key is not None else "your key"
        raise Unusable(f"it is {verified.signature.value}, not signed with {owner}", unsigned=True)


def check_tf(candidate: Candidate) -> None:
    """Raise :class:`Unusable` unless every file of a TensorFlow checkpoint is there."""
    _, problem = legacy.checkpoint_files(candidate.path)
    if problem:
        raise Unusable(problem)


def _key_named(signing_key: SigningKey | None) -> bool:
    return signing_key is not None and signing_key.named_by_caller


# --------------------------------------------------------------------------- walking


def until_settled(folder: CheckpointFolder, examine: Callable[[Survey], T], unsettled: Callable[[T], bool]) -> T:
    """Survey ``folder`` and ``examine`` it, again while the outcome is ``unsettled`` and the files changed."""
    survey = take_survey(folder)
    outcome = examine(survey)
    for attempt in range(1, SURVEY_ATTEMPTS):
        if not unsettled(outcome) or not survey.changed():
            break
        time.sleep(_SURVEY_PAUSE_SECONDS * attempt)
        survey = take_survey(folder)
        outcome = examine(survey)
    return outcome


def first_usable(
    folder: CheckpointFolder, use: Callable[[Candidate], T], kinds: Collection[CheckpointKind] = tuple(CheckpointKind)
) -> Walk[T]:
    """The newest candidate of ``kinds`` that ``use`` accepts, warning if it is not the expected one."""

    def walk(survey: Survey) -> Walk[T]:
        outcome: Walk[T] = Walk(notes=list(survey.notes))
        for candidate in survey.candidates:
            if candidate.kind not in kinds:
                continue
            try:
                outcome.result = use(candidate)
            except Unusable as reason:
                outcome.skipped.append((candidate, reason))
                continue
            outcome.chosen = candidate
            break
        if outcome.skipped:
            outcome.notes.append("skipped " + "; ".join(f"{c.path.name}: {reason}" for c, reason in outcome.skipped))
        if outcome.chosen and outcome.chosen.abandoned:
            outcome.notes.append(
                "only checkpoints of a run that training was restarted before are left; "
                f"{outcome.chosen.path.name} is one"
            )
        elif outcome.chosen and not outcome.skipped:
            expected = survey.expected.get(outcome.chosen.kind, outcome.chosen.path)
            if expected != outcome.chosen.path:
                outcome.notes.append(f"the index names {expected.name}, but {outcome.chosen.path.name} is newer")
        return outcome

    outcome = until_settled(folder, walk, lambda outcome: bool(outcome.notes))
    if outcome.notes:
        verdict = f"Using {outcome.chosen.path.name}" if outcome.chosen else "No usable checkpoint is left"
        warn_caller(
            f"The checkpoint directory {folder.directory} is torn: {'; '.join(outcome.notes)}. {verdict}.",
            CheckpointFallbackWarning,
        )
    return outcome


def latest_checkpoint(
    directory: PathLike, *, key: bytes | str | None = None, storage_options: Mapping[str, Any] | None = None
) -> Path | None:
    """The newest usable checkpoint in ``directory``, or None if there is none.

    nnsave's own checkpoints (``ckpt-NNNNN.keras``, listed in
    ``checkpoint.json``) come first; a ``.keras`` checkpoint is usable when it
    matches its manifest. Failing those, TensorFlow's ``checkpoint`` state
    file is read (as ``tf.train.latest_checkpoint`` would, without importing
    TensorFlow), and the newest complete prefix is returned.

    Parameters
    ----------
    directory : str, bytes, os.PathLike or URL
        A directory written by :class:`Checkpointer`, ``tf.train.CheckpointManager``
        or TF1's ``tf.train.Saver``; or a prefix on an object store
        (``s3://bucket/runs/digits``) written by :class:`Checkpointer`.
    key : bytes or str, optional
        Accept only ``.keras`` checkpoints signed with this key (the
        ``NNSAVE_KEY`` environment variable does the same); the others are
        skipped with a warning. TensorFlow checkpoints carry no signature,
        so a key does not apply to them.
    storage_options : dict, optional
        For a URL: options for fsspec, as :func:`nnsave.save` takes them.

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
        The directory is torn (a checkpoint deleted or damaged, a missing,
        stale or damaged index, a path in the state file that leads outside
        the directory, a checkpoint not signed with the key named) and the
        answer is the newest checkpoint that is still usable.

    Examples
    --------
    >>> nnsave.latest_checkpoint("runs/digits")  # doctest: +SKIP
    PosixPath('runs/digits/ckpt-00010.keras')
    """
    folder = CheckpointFolder(directory, storage_options).require()
    signing_key = keys.resolve_key(key, create=False)

    def usable(candidate: Candidate) -> None:
        if candidate.kind is CheckpointKind.TF:
            check_tf(candidate)
        elif _key_named(signing_key):
            require_signature(verify_keras(candidate, signing_key), signing_key)
        else:
            verify_keras(candidate, signing_key)

    chosen = first_usable(folder, usable).chosen
    return chosen.path if chosen else None


def resume(
    directory: PathLike,
    *,
    trusted: bool = False,
    safe_mode: bool = True,
    compile: bool = True,
    custom_objects: Mapping[str, Any] | None = None,
    key: bytes | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> tuple[keras.Model, int]:
    """Load the newest usable checkpoint and the epoch to continue from.

    The model comes back compiled, with its optimizer state, so that
    ``model.fit(..., initial_epoch=initial_epoch, epochs=N)`` carries on
    exactly where training stopped.

    Parameters
    ----------
    directory : str, bytes, os.PathLike or URL
        A directory written by :class:`Checkpointer`, local or on an object store.
    trusted, safe_mode, compile, custom_objects, key, storage_options : see :func:`nnsave.load`
        Passed on to it. A checkpoint of a model with a
        ``Lambda`` layer needs ``safe_mode=False``; your own checkpoints are
        signed with your key, so that is all it needs.

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
    UntrustedFileError
        It holds intact checkpoints, but none signed with the key that was
        named (or, with ``safe_mode=False``, with your key); or the newest
        one holds what safe mode refuses (load it with ``safe_mode=False``).
    FormatError
        The newest usable checkpoint is a TensorFlow one; restore it with
        :func:`restore_tf_checkpoint` or :mod:`nnsave.legacy`.

    Warns
    -----
    CheckpointFallbackWarning
        As for :func:`nnsave.latest_checkpoint`. A checkpoint is also
        skipped when a key is named, or ``safe_mode=False`` without
        ``trusted=True``, and it is not signed with that key (or yours).

    Examples
    --------
    >>> model, initial_epoch = nnsave.resume("runs/digits")  # doctest: +SKIP
    >>> callbacks = [nnsave.Checkpointer("runs/digits")]  # doctest: +SKIP
    >>> model.fit(X, y, epochs=20, initial_epoch=initial_epoch, callbacks=callbacks)  # doctest: +SKIP
    """
    folder = CheckpointFolder(directory, storage_options).require()
    signing_key = keys.resolve_key(key, create=False)
    # A load that could run code needs a voucher; rather than fail on a
    # newer checkpoint nobody vouches for, fall back to one your key signed.
    signature_needed = _key_named(signing_key) or (safe_mode is False and trusted is not True)

    def load(candidate: Candidate) -> tuple[keras.Model, int]:
        if candidate.kind is CheckpointKind.TF:
            check_tf(candidate)
            raise FormatError(
                f"The newest checkpoint in {folder.directory} is the TensorFlow checkpoint "
                f"{candidate.path.name}, which holds variables but no model. Build the model, "
                "then restore it with nnsave.restore_tf_checkpoint(checkpoint, manager), "
                "or copy TF1 weights with nnsave.legacy.assign_tf1_weights."
            )
        verified = verify_keras(candidate, signing_key)
        if signature_needed:
            require_signature(verified, signing_key)
        try:
            model = api.load(
                candidate.path, trusted=trusted, safe_mode=safe_mode, compile=compile,
                custom_objects=custom_objects, key=key,
            )
        except (FileMissingError, IntegrityError):
            raise Unusable("it was replaced or deleted while it was being loaded") from None
        assert candidate.epoch is not None  # every .keras candidate's name holds its epoch
        return model, candidate.epoch

    walk = first_usable(folder, load)
    if walk.result is not None:
        return walk.result
    if walk.skipped:
        _raise_none_usable(folder, walk, signing_key)
    raise FileMissingError(
        f"{folder.directory} holds no checkpoint (no ckpt-NNNNN.keras files, no "
        f"{INDEX_NAME}, no TensorFlow {TF_STATE_NAME} file). Train with "
        "callbacks=[nnsave.Checkpointer(directory)] first.",
        str(folder.directory),
    )


def _raise_none_usable(folder: CheckpointFolder, walk: Walk[Any], signing_key: SigningKey | None) -> None:
    count = len(walk.skipped)
    if any(reason.unsigned for _, reason in walk.skipped):
        owner = signing_key.describe() if signing_key is not None else "your key (you have none yet)"
        raise UntrustedFileError(
            f"{folder.directory} holds {count} checkpoint(s), but none that is intact is signed "
            f"with {owner} (see the warning above). Resume with the key that signed them "
            "(key= or NNSAVE_KEY), or, only if you trust whoever wrote them, trusted=True."
        )
    raise IntegrityError(
        f"{folder.directory} holds {count} checkpoint(s), but none is intact (see the warning "
        "above). Restore one from a backup or train from scratch."
    )


# --------------------------------------------------------------------------- listing


@dataclass(frozen=True)
class CheckpointStatus:
    """One row of :func:`nnsave.list_checkpoints` (and of ``nnsave ls``).

    Attributes
    ----------
    path : pathlib.Path
        A ``.keras`` file or a TensorFlow checkpoint prefix.
    kind : CheckpointKind
        ``"keras"`` or ``"tf"`` (a ``str`` enum, so it equals those strings).
    epoch : int or None
        Completed epochs (for TensorFlow, the prefix's trailing step number).
    metric : str or None
        The monitored key, or ``"loss"`` when nothing was monitored.
    value : float or None
        That metric's value at the checkpoint, when it is a finite number.
    size : int
        Bytes on disk (all files of a TensorFlow checkpoint).
    verified : bool
        ``.keras``: it matches its manifest, and is signed with the key named
        if one was. TensorFlow: every file is present.
    problem : str or None
        Why ``verified`` is False.
    latest, best : bool
        Whether :func:`nnsave.latest_checkpoint` would pick it; whether the index calls it best.
    signature : SignatureStatus or None
        ``.keras``: whether its manifest is signed with your key (or the one
        named). None for TensorFlow checkpoints, and where the manifest could
        not be read.
    """

    path: Path
    kind: CheckpointKind
    epoch: int | None
    metric: str | None
    value: float | None
    size: int
    verified: bool
    problem: str | None = None
    latest: bool = False
    best: bool = False
    signature: SignatureStatus | None = None


def list_checkpoints(
    directory: PathLike, *, key: bytes | str | None = None, storage_options: Mapping[str, Any] | None = None
) -> list[CheckpointStatus]:
    """Describe every checkpoint in ``directory``, oldest first, verifying each.

    Nothing is loaded: ``.keras`` checkpoints are hashed and their manifests
    read; TensorFlow checkpoints are checked for missing files.

    Parameters
    ----------
    directory : str, bytes, os.PathLike or URL
        A checkpoint directory, local or on an object store.
    key : bytes or str, optional
        Count a ``.keras`` checkpoint as verified only if it is signed with
        this key (default: ``NNSAVE_KEY``, if set).
    storage_options : dict, optional
        For a URL: options for fsspec.

    Raises
    ------
    FileNotFoundError, NotADirectoryError
        As for :func:`nnsave.latest_checkpoint`.

    Warns
    -----
    CheckpointFallbackWarning
        The index or TensorFlow's state file is missing or damaged, or the
        state file names a path outside the directory.
    """
    folder = CheckpointFolder(directory, storage_options).require()
    signing_key = keys.resolve_key(key, create=False)

    def describe(survey: Survey) -> tuple[Survey, list[CheckpointStatus]]:
        return survey, [_status(survey, candidate, signing_key) for candidate in survey.candidates]

    def unsettled(outcome: tuple[Survey, list[CheckpointStatus]]) -> bool:
        survey, rows = outcome
        return bool(survey.notes) or not all(row.verified for row in rows)

    survey, rows = until_settled(folder, describe, unsettled)
    if survey.notes:
        warn_caller(
            f"The checkpoint directory {folder.directory} is torn: {'; '.join(survey.notes)}.",
            CheckpointFallbackWarning,
        )
    latest = next((row.path for row in rows if row.verified), None)
    rows = [replace(row, latest=row.path == latest) for row in rows]
    # Oldest first, nnsave's own before TensorFlow's.
    return sorted(rows, key=lambda row: (row.kind is not CheckpointKind.KERAS, -1 if row.epoch is None else row.epoch))


def _status(survey: Survey, candidate: Candidate, signing_key: SigningKey | None) -> CheckpointStatus:
    bare = CheckpointStatus(
        candidate.path, candidate.kind, candidate.epoch, None, None, _size_on_disk(survey.folder, candidate), True
    )
    try:
        if candidate.kind is CheckpointKind.TF:
            check_tf(candidate)
            return bare
        verified = verify_keras(candidate, signing_key)
    except Unusable as reason:
        return replace(bare, verified=False, problem=str(reason))
    row = _with_metric(replace(bare, size=verified.size, signature=verified.signature), verified, survey.index)
    try:
        if _key_named(signing_key):
            require_signature(verified, signing_key)
    except Unusable as reason:
        return replace(row, verified=False, problem=str(reason))
    return row


def _with_metric(row: CheckpointStatus, verified: Verified, index: Index | None) -> CheckpointStatus:
    """``row`` with the monitored metric and its value, as the manifest's metadata records them."""
    metadata = verified.manifest.metadata
    logs = metadata.get("logs") if isinstance(metadata.get("logs"), dict) else {}
    monitor = metadata.get("monitor")
    metric = monitor if isinstance(monitor, str) and monitor else (index.monitor if index and index.monitor else "loss")
    best = index is not None and index.best == row.path.name
    return replace(row, metric=metric, value=finite_value(logs.get(metric)), best=best)


def _size_on_disk(folder: CheckpointFolder, candidate: Candidate) -> int:
    if candidate.kind is CheckpointKind.TF:
        files, _ = legacy.checkpoint_files(candidate.path)
    else:
        files = [candidate.path]
    return sum(folder.size(str(path.relative_to(folder.directory))) for path in files)


# --------------------------------------------------------------------------- helpers


def why_unreadable(error: Exception) -> str:
    """Why a file could not be read, in a few words that do not repeat its path."""
    if isinstance(error, FileMissingError):
        return "the file is gone"
    if isinstance(error, DirectoryGivenError):
        return "it is a directory"
    if isinstance(error, NotAFileError):
        return "it is not a regular file"
    if isinstance(error, PermissionError):
        return "permission to read it is denied"
    return first_sentence(str(error))


def first_sentence(text: str) -> str:
    """The first sentence of a message, at most 160 characters, for a warning that lists several."""
    sentence = text.split(". ")[0].rstrip(".")
    return sentence if len(sentence) <= 160 else sentence[:157] + "..."


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
