"""The approval wait observes the ledger and never decides: the trigger reports the promotion's
status (or the deadline), and whatever wakes the sensor is only a hint for `settle_approval`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from stella_operators.ledger import Ledger
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release
from stella_operators.sensors.approval import ApprovalSensor, _as_wait_event
from stella_operators.triggers.ledger_poll import ApprovalTrigger


@pytest.fixture
def waiting(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER_T", json.dumps({"conn_type": "sqlite",
                                                                   "host": str(tmp_path / "ledger.db")}))
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        release = ledger.add_release(Release.seal(
            id="rel-shop-1", app="shop", name="shop-1.0.0", created_at=datetime.now(UTC),
            created_by="ci-bot", source={}, components=[ComponentDigest(
                name="web", repository="registry.local/shop/web", digest="sha256:" + "1" * 64)]))
        promo = ledger.create_promotion("shop", "prod", release.id, "alice", "ship")
        ledger.transition(promo.id, S.EVALUATING, actor="alice")
        ledger.transition(promo.id, S.AWAITING_APPROVAL, actor="stella")
        yield ledger, promo.id


def trigger(pid: str, deadline: datetime) -> ApprovalTrigger:
    return ApprovalTrigger(pid, "/unused/estate.yaml", deadline.isoformat(), "stella_ledger_t", 0.1)


def test_trigger_reports_the_status_the_approval_call_settled(waiting):
    ledger, pid = waiting
    later = datetime.now(UTC) + timedelta(hours=1)
    assert trigger(pid, later)._check() is None                       # still waiting
    ledger.transition(pid, S.REJECTED, actor="dave")
    assert trigger(pid, later)._check() == {"status": "rejected", "deadline": later.isoformat()}


def test_trigger_reports_the_deadline_only_while_waiting(waiting):
    _, pid = waiting
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert trigger(pid, past)._check() == {"status": "timeout", "deadline": past.isoformat()}


def test_what_wakes_the_sensor_becomes_a_hint_for_settling():
    assert _as_wait_event({"status": "approved"}, None) == {"status": "approved"}
    answered = {"chosen_options": ["Settled"], "params_input": {}, "responded_by_user": {"id": "x"}}
    assert _as_wait_event(answered, "D") == {"status": "answered", "deadline": "D"}
    assert _as_wait_event({"error": "late", "error_type": "timeout"}, "D") == {"status": "timeout", "deadline": "D"}
    assert _as_wait_event({"error": "boom", "error_type": "x"}, "D")["status"] == "error"


def test_the_sensor_is_a_sensor_and_refuses_an_unknown_wait():
    from airflow.sdk import BaseSensorOperator

    common = {"task_id": "approval", "promotion_id": "p", "estate_path": "e", "app": "a", "environment": "e"}
    sensor = ApprovalSensor(**common)
    assert isinstance(sensor, BaseSensorOperator) and sensor.wait_for == "input" and sensor.retries == 2
    with pytest.raises(ValueError, match="wait_for"):
        ApprovalSensor(**common, wait_for="poll")
