"""The trust decision, tested as the pure function it is."""

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnsave import trust
from nnsave.errors import IntegrityError, UntrustedFileError
from nnsave.formats import FileFacts
from nnsave.formats._base import Expansion
from nnsave.keys import KeySource, SignatureStatus, SigningKey
from nnsave.trust import Evidence, Integrity, PinStatus, Reason, Request, Verdict, Vouch, decide

PICKLE = FileFacts(runs_code=True)
SAFE_KERAS = FileFacts(runs_code=False)
INTACT = Evidence(Integrity.INTACT, SignatureStatus.UNSIGNED)


def _evidence(**changes):
    return Evidence(**{**INTACT.__dict__, **changes})


@pytest.mark.parametrize(
    "facts, evidence, request_, verdict, reason_or_vouch",
    [
        # The rule itself: code runs only from a vouched-for file.
        (PICKLE, INTACT, Request(), Verdict.REFUSE, Reason.CODE_UNVOUCHED),
        (PICKLE, _evidence(signature=SignatureStatus.VALID), Request(), Verdict.LOAD, Vouch.SIGNATURE),
        (PICKLE, _evidence(signature=SignatureStatus.OTHER_KEY), Request(), Verdict.REFUSE, Reason.CODE_UNVOUCHED),
        (PICKLE, _evidence(signature=SignatureStatus.INVALID), Request(), Verdict.REFUSE, Reason.CODE_UNVOUCHED),
        (PICKLE, _evidence(pin=PinStatus.MATCH), Request(), Verdict.LOAD, Vouch.PIN),
        (PICKLE, INTACT, Request(trusted=True), Verdict.LOAD, Vouch.CALLER),
        (PICKLE, _evidence(integrity=Integrity.NO_MANIFEST, signature=SignatureStatus.NO_MANIFEST), Request(), Verdict.REFUSE, Reason.CODE_UNVOUCHED),
        # An unsigned manifest proves integrity, so formats that run no code load.
        (SAFE_KERAS, INTACT, Request(), Verdict.LOAD, None),
        (SAFE_KERAS, _evidence(integrity=Integrity.NO_MANIFEST), Request(), Verdict.LOAD, None),
        # Never loaded, whoever vouches.
        (PICKLE, _evidence(integrity=Integrity.MISMATCH, signature=SignatureStatus.VALID), Request(trusted=True), Verdict.REFUSE, Reason.INTEGRITY),
        (SAFE_KERAS, _evidence(pin=PinStatus.MISMATCH), Request(trusted=True), Verdict.REFUSE, Reason.PIN_MISMATCH),
        (FileFacts(runs_code=False, hostile_names=("../x",)), INTACT, Request(trusted=True), Verdict.REFUSE, Reason.HOSTILE_NAMES),
        (FileFacts(runs_code=False, reaches_outside=("a TFSMLayer",)), _evidence(signature=SignatureStatus.VALID), Request(trusted=True), Verdict.REFUSE, Reason.REACHES_OUTSIDE),
        # ... but outside safe mode, reaching outside is code, which vouching allows.
        (FileFacts(runs_code=True, reaches_outside=("a TFSMLayer",)), _evidence(signature=SignatureStatus.VALID), Request(safe_mode=False), Verdict.LOAD, Vouch.SIGNATURE),
        # A named key demands its signature on every file.
        (SAFE_KERAS, INTACT, Request(key_named=True), Verdict.REFUSE, Reason.SIGNATURE_REQUIRED),
        (PICKLE, _evidence(signature=SignatureStatus.OTHER_KEY), Request(key_named=True, trusted=True), Verdict.REFUSE, Reason.SIGNATURE_REQUIRED),
        (SAFE_KERAS, _evidence(signature=SignatureStatus.VALID), Request(key_named=True), Verdict.LOAD, Vouch.SIGNATURE),
        # skops types outside the safe set: approved by name or by vouching.
        (FileFacts(runs_code=False, unapproved_types=("a.B",)), INTACT, Request(), Verdict.REFUSE, Reason.UNAPPROVED_TYPES),
        (FileFacts(runs_code=False, unapproved_types=("a.B",)), INTACT, Request(trusted_types=("a.B",)), Verdict.LOAD, None),
        (FileFacts(runs_code=False, unapproved_types=("a.B",)), _evidence(signature=SignatureStatus.VALID), Request(), Verdict.LOAD, Vouch.SIGNATURE),
        # Memory-mapping a pickle that others can change in place after the check.
        (PICKLE, _evidence(signature=SignatureStatus.VALID, others_can_write=True), Request(memory_map=True), Verdict.REFUSE, Reason.SHARED_MAPPING),
        (PICKLE, _evidence(signature=SignatureStatus.VALID, others_can_write=True), Request(memory_map=True, trusted=True), Verdict.LOAD, Vouch.SIGNATURE),
    ],
)
def test_decision_table(facts, evidence, request_, verdict, reason_or_vouch):
    decision = decide(facts, evidence, request_)
    assert decision.verdict is verdict
    if verdict is Verdict.REFUSE:
        assert decision.reason is reason_or_vouch
    else:
        assert decision.vouched_by is reason_or_vouch


def _bomb(archive, unpacked, members=3, ratio=1.0):
    return FileFacts(runs_code=False, expansion=Expansion(archive, unpacked, members, ratio))


def test_zip_bombs_are_refused_unless_vouched_for():
    # The attack from the issue: 0.35 MB holding 300 members of 1 MiB of zeros.
    issue_case = _bomb(350_000, 300 << 20, members=300, ratio=1000)
    assert decide(issue_case, INTACT, Request()).reason is Reason.ZIP_BOMB
    assert decide(issue_case, _evidence(signature=SignatureStatus.VALID), Request()).allowed
    assert decide(_bomb(10 << 20, 60 << 20), INTACT, Request()).allowed, "within the minimum budget"
    assert decide(_bomb(1 << 30, (1 << 30) + 100), INTACT, Request()).allowed, "a large stored archive"
    assert decide(_bomb(1 << 20, 2 << 20, members=trust.MAX_MEMBERS + 1), INTACT, Request()).reason is Reason.ZIP_BOMB
    assert decide(_bomb(1 << 20, 2 << 20, ratio=trust.MAX_MEMBER_RATIO + 1), INTACT, Request()).reason is Reason.ZIP_BOMB


_facts = st.builds(
    FileFacts,
    runs_code=st.booleans(),
    unapproved_types=st.lists(st.sampled_from(["a.A", "b.B"]), max_size=2, unique=True).map(tuple),
    reaches_outside=st.lists(st.just("a Lambda"), max_size=1).map(tuple),
    hostile_names=st.lists(st.just("../x"), max_size=1).map(tuple),
    expansion=st.none() | st.builds(Expansion, st.integers(1, 1 << 30), st.integers(0, 1 << 40), st.integers(0, 20_000), st.floats(1, 2000)),
)
_evidence_strategy = st.builds(
    Evidence,
    integrity=st.sampled_from(Integrity),
    signature=st.sampled_from(SignatureStatus),
    pin=st.sampled_from(PinStatus),
    others_can_write=st.booleans(),
)
_requests = st.builds(
    Request,
    trusted=st.booleans(),
    trusted_types=st.lists(st.sampled_from(["a.A", "b.B"]), max_size=2, unique=True).map(tuple),
    safe_mode=st.booleans(),
    key_named=st.booleans(),
    memory_map=st.booleans(),
)


@settings(max_examples=2000, deadline=None)
@given(facts=_facts, evidence=_evidence_strategy, request_=_requests)
def test_the_rules_hold_for_every_combination(facts, evidence, request_):
    decision = decide(facts, evidence, request_)
    if not decision.allowed:
        assert decision.reason is not None
        return
    vouched = (
        evidence.signature is SignatureStatus.VALID or evidence.pin is PinStatus.MATCH or request_.trusted
    )
    assert evidence.integrity is not Integrity.MISMATCH
    assert evidence.pin is not PinStatus.MISMATCH
    assert not facts.hostile_names
    assert not (facts.runs_code and not vouched), "code ran from a file nobody vouched for"
    assert not (request_.safe_mode and facts.reaches_outside)
    assert not (request_.key_named and evidence.signature is not SignatureStatus.VALID)
    assert not (trust.unpacks_too_far(facts) and not vouched)
    missing = set(facts.unapproved_types) - set(request_.trusted_types)
    assert not (missing and not vouched)
    assert set(decision.approved_types) == set(facts.unapproved_types)
    assert decision.unverified == (
        evidence.integrity is Integrity.NO_MANIFEST and evidence.pin is not PinStatus.MATCH
    )


def test_every_refusal_names_the_file_and_says_what_to_do():
    path = Path("shared/model.joblib")
    key = SigningKey(b"k" * 32, KeySource.USER_FILE, Path("/home/me/.config/nnsave/signing.key"))
    expansion = Expansion(1000, 1 << 30, 5, 900.0)
    facts = FileFacts(
        runs_code=True, unapproved_types=("a.B",), reaches_outside=("a Lambda",), hostile_names=("../x",), expansion=expansion
    )
    for reason in Reason:
        decision = trust.Decision(Verdict.REFUSE, reason)
        error = trust.refusal(path, decision, facts, INTACT, Request(), key, detail="details")
        assert isinstance(error, (IntegrityError, UntrustedFileError)), reason
        assert str(path) in str(error) or "details" in str(error), reason
    unvouched = trust.refusal(path, trust.Decision(Verdict.REFUSE, Reason.CODE_UNVOUCHED), PICKLE, INTACT, Request(), key)
    text = str(unvouched)
    assert "your own key (id " in text and "key=" in text and "expected_sha256" in text and "trusted=True" in text
    assert "/home/me" not in text, "a message must read the same on every machine"
