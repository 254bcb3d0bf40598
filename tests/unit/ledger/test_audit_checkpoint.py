"""Issue 9 item 3, second half: a signed checkpoint kept outside the database shows events cut off
the end of the audit chain, which the chain alone cannot."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime

import pytest

from stella_operators.evidence.keys import SigningKey, TrustedKeys
from stella_operators.ledger.audit_checkpoint import (
    CheckpointError,
    check_checkpoint,
    make_checkpoint,
    read_checkpoint,
)
from stella_operators.ledger.audit_verify import ProblemKind, verify_audit_rows
from tests.unit.ledger.test_audit_verify import chain, rehashed

AT = datetime(2025, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture()
def org() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture()
def trusted(org: SigningKey) -> TrustedKeys:
    keys = TrustedKeys()
    keys.add(org.public_pem())
    return keys


def test_checkpoint_holds_while_the_log_only_grows(org: SigningKey, trusted: TrustedKeys) -> None:
    rows = chain(5)
    cp = read_checkpoint(make_checkpoint(rows, org, AT), trusted)
    assert (cp.events, cp.head, cp.last_seq, cp.key_id) == (5, rows[-1].hash, 5, org.key_id)
    assert check_checkpoint(rows, cp) == []
    grown = chain(8)  # the same first five events plus three more
    assert grown[4] == rows[4] and check_checkpoint(grown, cp) == []


def test_events_cut_off_the_end_are_named(org: SigningKey, trusted: TrustedKeys) -> None:
    rows = chain(6)
    cp = read_checkpoint(make_checkpoint(rows, org, AT), trusted)
    cut = rows[:4]
    assert verify_audit_rows(cut).ok  # the chain alone cannot tell
    problems = check_checkpoint(cut, cp)
    assert [(p.kind, p.seq) for p in problems] == [(ProblemKind.CUT, 6)]
    assert problems[0].line() == (
        f"CUT: events were cut off the end: the checkpoint of 2025-03-02T12:00:00Z (signed by {org.key_id}) "
        f"saw 6 events ending at event 6 (head {rows[-1].hash[:12]}); the log has 4, the last is 4")


def test_rewritten_head_is_named(org: SigningKey, trusted: TrustedKeys) -> None:
    rows = chain(4)
    cp = read_checkpoint(make_checkpoint(rows, org, AT), trusted)
    rows[3] = rehashed(rows[3], actor="mallory")
    assert verify_audit_rows(rows).ok  # a re-hashed last event links fine
    assert [p.kind for p in check_checkpoint(rows, cp)] == [ProblemKind.CHANGED]


def test_event_removed_before_the_head_is_named(org: SigningKey, trusted: TrustedKeys) -> None:
    rows = chain(5)
    cp = read_checkpoint(make_checkpoint(rows, org, AT), trusted)
    del rows[1]
    assert [(p.kind, p.seq) for p in check_checkpoint(rows, cp)] == [(ProblemKind.REMOVED, 5)]


def test_checkpoint_from_an_untrusted_key_or_edited_is_refused(org: SigningKey, trusted: TrustedKeys) -> None:
    rows = chain(3)
    with pytest.raises(CheckpointError, match="untrusted key"):
        read_checkpoint(make_checkpoint(rows, SigningKey.generate(), AT), trusted)
    env = json.loads(make_checkpoint(rows, org, AT))
    body = json.loads(base64.b64decode(env["payload"]))
    body["events"] = 2  # claim fewer events, so a later cut would pass
    env["payload"] = base64.b64encode(json.dumps(body).encode()).decode()
    with pytest.raises(CheckpointError, match=f"does not verify with key {org.key_id}"):
        read_checkpoint(json.dumps(env), trusted)
    with pytest.raises(CheckpointError, match="not a checkpoint file"):
        read_checkpoint("{}", trusted)


def test_empty_log_checkpoint(org: SigningKey, trusted: TrustedKeys) -> None:
    cp = read_checkpoint(make_checkpoint([], org, AT), trusted)
    assert (cp.events, cp.last_seq) == (0, None)
    assert check_checkpoint([], cp) == []
    assert check_checkpoint([dataclasses.replace(r) for r in chain(2)], cp) == []
