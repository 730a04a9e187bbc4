"""The one place that decides whether a file may be deserialised.

The rule, in one sentence: **a file whose loading can run code loads only if
the caller vouches for it**, and a caller vouches in exactly one of three
ways: the manifest carries a valid signature under a key the loader holds
(every ``nnsave.save`` signs with the user's own key, so your own files
load), the payload matches an ``expected_sha256=`` pin, or ``trusted=True``.

Files that can run code: a pickle (``.joblib``); a Keras file loaded with
``safe_mode=False``; a ``.skops`` file holding types outside skops's safe set.
A manifest without a signature proves integrity (these are the bytes that were
described) and authorises nothing else: anyone can write one.

Beyond that rule, whatever the caller says:

- bytes that do not match their manifest, or their pin, are never loaded;
- a zip member named to escape the archive (``../x``) is never loaded;
- in safe mode, a Keras config that holds code or reaches outside its file
  (a ``TFSMLayer``, a vocabulary read from a path) is refused;
- an archive that unpacks far beyond its size is refused unless vouched for;
- when the caller named a key (``key=`` or ``NNSAVE_KEY``), every file must
  carry a valid signature under it;
- a pickle is memory-mapped only if no other user can change it in place.

No global switch, environment variable or library setting changes any of
this. :func:`decide` is a pure function of facts; :func:`refusal` turns a
refusal into the error the caller sees.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from .errors import IntegrityError, NNSaveError, Problem, UntrustedFileError
from .formats import FileFacts
from .keys import KeySource, SignatureStatus, SigningKey

__all__ = [
    "Integrity",
    "PinStatus",
    "Evidence",
    "Request",
    "Verdict",
    "Reason",
    "Vouch",
    "Decision",
    "decide",
    "refusal",
    "MIN_UNPACK_BUDGET",
    "UNPACK_RATIO",
    "MAX_MEMBERS",
    "MAX_MEMBER_RATIO",
]

#: An archive may always unpack to this much...
MIN_UNPACK_BUDGET = 64 << 20
#: ...or to this many times its own size, whichever is more.
UNPACK_RATIO = 100
MAX_MEMBERS = 10_000
#: A single member over 1 MiB that expands more than this is a zip bomb.
MAX_MEMBER_RATIO = 200


class Integrity(enum.Enum):
    """What comparing the payload with its manifest found."""

    INTACT = "intact"
    MISMATCH = "mismatch"
    NO_MANIFEST = "no manifest"


class PinStatus(enum.Enum):
    """What comparing the payload with ``expected_sha256`` found."""

    NONE = "no pin"
    MATCH = "matches the pin"
    MISMATCH = "differs from the pin"


@dataclass(frozen=True)
class Evidence:
    """What the integrity check established about this copy of the file."""

    integrity: Integrity
    signature: SignatureStatus
    pin: PinStatus = PinStatus.NONE
    #: Someone other than this user (or root) could change the payload in place.
    others_can_write: bool = False
    problem: Problem | None = None


@dataclass(frozen=True)
class Request:
    """What the caller asked for."""

    trusted: bool = False
    trusted_types: tuple[str, ...] = ()
    safe_mode: bool = True
    #: The caller named a key (``key=`` or ``NNSAVE_KEY``), so every file must be signed with it.
    key_named: bool = False
    memory_map: bool = False


class Verdict(enum.Enum):
    LOAD = "load"
    REFUSE = "refuse"


class Reason(enum.Enum):
    """Why a file is refused."""

    INTEGRITY = "the bytes do not match the manifest"
    PIN_MISMATCH = "the bytes do not match expected_sha256"
    HOSTILE_NAMES = "a member name points outside the archive"
    SIGNATURE_REQUIRED = "the caller's key did not sign it"
    ZIP_BOMB = "it unpacks far beyond its size"
    REACHES_OUTSIDE = "safe mode refuses what it holds"
    UNAPPROVED_TYPES = "it holds types outside the safe set"
    CODE_UNVOUCHED = "loading it runs code, and nobody vouched for it"
    SHARED_MAPPING = "a pickle others can write cannot be memory-mapped"


class Vouch(enum.Enum):
    """How the caller vouched for a file."""

    SIGNATURE = "a valid signature"
    PIN = "expected_sha256"
    CALLER = "trusted=True"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: Reason | None = None
    vouched_by: Vouch | None = None
    #: Types outside the format's safe set that the load may build.
    approved_types: tuple[str, ...] = ()
    #: The file has no manifest and no pin checked its bytes; it loads with a warning.
    unverified: bool = False

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.LOAD


def _refuse(reason: Reason) -> Decision:
    return Decision(Verdict.REFUSE, reason)


def _vouch(evidence: Evidence, request: Request) -> Vouch | None:
    if evidence.signature is SignatureStatus.VALID:
        return Vouch.SIGNATURE
    if evidence.pin is PinStatus.MATCH:
        return Vouch.PIN
    if request.trusted:
        return Vouch.CALLER
    return None


def unpacks_too_far(facts: FileFacts) -> bool:
    """True if an archive's expansion looks like a zip bomb."""
    expansion = facts.expansion
    if expansion is None:
        return False
    budget = max(MIN_UNPACK_BUDGET, UNPACK_RATIO * expansion.archive_bytes)
    return (
        expansion.unpacked_bytes > budget
        or expansion.members > MAX_MEMBERS
        or expansion.worst_member_ratio > MAX_MEMBER_RATIO
    )


def decide(facts: FileFacts, evidence: Evidence, request: Request) -> Decision:
    """Whether to load a file, given the format's facts, the evidence and the request.

    A pure function: it reads nothing and raises nothing.

    Examples
    --------
    >>> from nnsave.formats import FileFacts
    >>> pickle = FileFacts(runs_code=True)
    >>> unsigned = Evidence(Integrity.INTACT, SignatureStatus.UNSIGNED)
    >>> decide(pickle, unsigned, Request()).reason
    <Reason.CODE_UNVOUCHED: 'loading it runs code, and nobody vouched for it'>
    >>> decide(pickle, Evidence(Integrity.INTACT, SignatureStatus.VALID), Request()).vouched_by
    <Vouch.SIGNATURE: 'a valid signature'>
    """
    if evidence.integrity is Integrity.MISMATCH:
        return _refuse(Reason.INTEGRITY)
    if evidence.pin is PinStatus.MISMATCH:
        return _refuse(Reason.PIN_MISMATCH)
    if facts.hostile_names:
        return _refuse(Reason.HOSTILE_NAMES)
    if request.key_named and evidence.signature is not SignatureStatus.VALID:
        return _refuse(Reason.SIGNATURE_REQUIRED)
    vouched_by = _vouch(evidence, request)
    if unpacks_too_far(facts) and vouched_by is None:
        return _refuse(Reason.ZIP_BOMB)
    if request.safe_mode and facts.reaches_outside:
        return _refuse(Reason.REACHES_OUTSIDE)
    approved: tuple[str, ...] = ()
    if facts.unapproved_types:
        if vouched_by is None and set(facts.unapproved_types) - set(request.trusted_types):
            return _refuse(Reason.UNAPPROVED_TYPES)
        approved = facts.unapproved_types
    if facts.runs_code and vouched_by is None:
        return _refuse(Reason.CODE_UNVOUCHED)
    if facts.runs_code and request.memory_map and evidence.others_can_write and not request.trusted:
        return _refuse(Reason.SHARED_MAPPING)
    return Decision(
        Verdict.LOAD,
        vouched_by=vouched_by,
        approved_types=approved,
        # A matching expected_sha256 checked every byte, manifest or not.
        unverified=evidence.integrity is Integrity.NO_MANIFEST and evidence.pin is not PinStatus.MATCH,
    )


# --------------------------------------------------------------------------- messages


def refusal(
    path: Path,
    decision: Decision,
    facts: FileFacts,
    evidence: Evidence,
    request: Request,
    key: SigningKey | None,
    *,
    detail: str = "",
) -> NNSaveError:
    """The error that explains ``decision`` to the caller, with what to do next."""
    reason = decision.reason
    if reason is Reason.INTEGRITY:
        return IntegrityError(detail or f"{path} does not match its manifest; do not use it.", evidence.problem)
    if reason is Reason.PIN_MISMATCH:
        return IntegrityError(
            f"{path} is not the file you expected: {detail}. Do not use it; fetch the file again.",
            Problem.CHANGED,
        )
    if reason is Reason.HOSTILE_NAMES:
        names = ", ".join(repr(name) for name in facts.hostile_names[:3])
        return UntrustedFileError(
            f"Refusing to load {path}: it contains the member(s) {names}, whose names "
            "point outside the archive (path traversal). No file nnsave writes has "
            "them; do not use this one."
        )
    if reason is Reason.SIGNATURE_REQUIRED:
        return UntrustedFileError(
            f"Refusing to load {path}: a key was named ({_key_words(key)}), so every "
            f"file must carry its signature, but this one is {_signature_words(evidence)}. "
            "Ask whoever shared it to save it with the same key, or load it without "
            "naming a key."
        )
    if reason is Reason.ZIP_BOMB:
        expansion = facts.expansion
        assert expansion is not None
        return UntrustedFileError(
            f"Refusing to load {path}: its {expansion.archive_bytes:,} bytes would unpack "
            f"to {expansion.unpacked_bytes:,} bytes in {expansion.members:,} members, "
            "far more than a model file needs (a zip bomb fills the disk or memory). If "
            "you made this file yourself, pass trusted=True."
        )
    if reason is Reason.REACHES_OUTSIDE:
        return UntrustedFileError(
            f"Refusing to load {path} in safe mode: it holds {'; '.join(facts.reaches_outside)}. "
            "Building that runs code or reads files outside the model file. If you "
            "trust the file's author, load it with safe_mode=False; nnsave then runs it "
            "only if the file is signed with your key, matches expected_sha256, or you "
            "pass trusted=True."
        )
    if reason is Reason.UNAPPROVED_TYPES:
        missing = sorted(set(facts.unapproved_types) - set(request.trusted_types))
        return UntrustedFileError(
            f"Refusing to load {path}: it contains types outside skops's safe set, which "
            f"could run code when built: {', '.join(missing)}. If you know them, pass them "
            "as trusted_types=[...] (nnsave.inspect lists them without loading), or "
            f"vouch for the whole file. {_how_to_vouch(evidence, key)}"
        )
    if reason is Reason.CODE_UNVOUCHED:
        return UntrustedFileError(
            f"Refusing to load {path}: loading it can run code (it is {_what_runs(facts, path)}), "
            f"and nobody vouched for it: its manifest is {_signature_words(evidence)}. "
            f"{_how_to_vouch(evidence, key)}"
        )
    if reason is Reason.SHARED_MAPPING:
        return UntrustedFileError(
            f"Refusing to memory-map {path}: it is a pickle that other users can change "
            "while it is mapped, after it was verified. Load it with mmap_mode=None (its "
            "bytes are then copied and verified), or pass trusted=True."
        )
    raise ValueError(f"no refusal for {decision!r}")


def _what_runs(facts: FileFacts, path: Path) -> str:
    if path.suffix.lower() == ".joblib":
        return "a pickle"
    return "a Keras model loaded with safe_mode=False"


def _key_words(key: SigningKey | None) -> str:
    return key.describe() if key is not None else "none"


def _signature_words(evidence: Evidence) -> str:
    return {
        SignatureStatus.VALID: "signed with your key",
        SignatureStatus.OTHER_KEY: "signed with another key",
        SignatureStatus.INVALID: "signed, but changed after signing",
        SignatureStatus.UNSIGNED: "not signed",
        SignatureStatus.NO_KEY: "signed, but you have no key to check it with",
        SignatureStatus.NO_MANIFEST: "missing (there is no manifest)",
    }[evidence.signature]


def _how_to_vouch(evidence: Evidence, key: SigningKey | None) -> str:
    own = (
        f"Files you save yourself are signed with {key.describe()} and load as they are."
        if key is not None and key.source is KeySource.USER_FILE
        else "Files you save yourself are signed with your own key (`nnsave key` shows where it lives) and load as they are."
    )
    return (
        f"{own} For a file from someone else: load it with key= (or NNSAVE_KEY) set to "
        "the key you share with them; or pass expected_sha256= with its SHA-256 from a "
        "source you trust; or, only if you trust whoever wrote it, trusted=True."
    )
