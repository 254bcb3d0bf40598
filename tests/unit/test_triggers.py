"""Triggers serialize to exactly what rebuilds them (the triggerer re-creates them from this)."""

import importlib

from stella_operators.triggers.ledger_poll import ApprovalTrigger, EnvironmentLockTrigger


def roundtrip(trigger):
    path, kwargs = trigger.serialize()
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**kwargs)


def test_approval_trigger_round_trip():
    t = ApprovalTrigger("prm-1", "/e.yaml", "2026-01-01T00:00:00+00:00", "ledger", 0.5)
    again = roundtrip(t)
    assert type(again) is ApprovalTrigger and again.serialize() == t.serialize()
    assert again.promotion_id == "prm-1" and again.poll_interval == 0.5


def test_lock_trigger_round_trip_and_deadline():
    t = EnvironmentLockTrigger("prod", "prm-2", "2000-01-01T00:00:00+00:00")
    assert roundtrip(t).serialize() == t.serialize()
    assert t._past_deadline()
