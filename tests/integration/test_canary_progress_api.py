"""A canary's progress through the /stella REST API of Airflow's real FastAPI app (in-process, real
auth): the promotion detail's `canary` field (documented in the OpenAPI schema), the board cell and
the timeline lines the Releases page renders, and the "why?" sentences. The ledger holds a canary
walked by the promotion services (tests/unit/promotion/test_canary_progress.py): step 1 advanced by
stella, step 2 (50 %) inconclusive and waiting for a human."""

from __future__ import annotations

import json

import pytest

from tests.unit.promotion.test_canary_progress import waiting_canary


@pytest.fixture()
def world(airflow_api, tmp_path, monkeypatch):
    from stella_operators.hooks.ledger import _open_ledger

    fleet, promo = waiting_canary(tmp_path, monkeypatch)
    monkeypatch.setenv("STELLA_ESTATE", str(tmp_path / "estate.yaml"))
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({"conn_type": "sqlite",
                                                                 "host": str(tmp_path / "ledger.db")}))
    try:
        yield airflow_api, fleet, promo
    finally:
        fleet.ledger.close()
        _open_ledger.cache_clear()   # the API app's ledger of this test's file


def test_the_promotion_detail_board_and_why_show_the_canary_walking(world):
    api, fleet, promo = world
    r = api.request("GET", f"/stella/api/v1/promotions/{promo.id}", user="alice")
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["status"] == "deploying" and detail["why"]["promotion_id"] == promo.id   # the other fields stay
    canary = detail["canary"]
    assert (canary["state"], canary["plan"], canary["current_step"], canary["current_weight"]) == (
        "waiting_for_human", [10, 50, 100], 2, 50)
    assert canary["distribution"] == {"stable": 50, "canary": 50}
    assert canary["waiting_for_human_since"] == "2026-03-02T09:05:00Z"
    first, second, third = canary["steps"]
    assert first["decisions"][0]["decided_by"] == "stella" and first["decisions"][0]["evidence_id"]
    assert first["analysis"]["outcome"] == "pass" and first["analysis"]["metrics"][0]["values"] == [0.01]
    assert second["state"] == "waiting_for_human" and second["router_share"] == 50 and third["state"] == "pending"
    evidence = api.request("GET", f"/stella/api/v1/evidence/{first['decisions'][0]['evidence_id']}", user="alice")
    assert evidence.status_code == 200

    b = api.request("GET", "/stella/api/v1/ui/board", user="alice").json()
    assert b["deployed"]["shop"]["prod"]["canary"]["label"] == "canary 50 %, waiting for a human"
    [row] = b["timeline"]
    assert row["canary"]["lines"] == [
        "step 1 of 3: 10 % (router: 10 %) -- analysis pass: error-rate 0.01 -- advanced by stella",
        "step 2 of 3: 50 % (router: 50 %) -- analysis inconclusive: error-rate no data -- waiting for a human"]

    why = api.request("GET", f"/stella/api/v1/ui/why/{promo.id}", user="alice").json()["sentences"]
    assert why[0] == "It is a canary (10 % -> 50 % -> 100 %), at step 2 of 3 (50 % of new requests to canary)."
    assert "it waits for a human since 2026-03-02T09:05:00Z" in why[-1]


def test_the_openapi_schema_documents_the_canary_field(world):
    api, fleet, promo = world
    schema = api.request("GET", "/stella/openapi.json", user=None).json()
    ok = schema["paths"]["/api/v1/promotions/{promotion_id}"]["get"]["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"].endswith("/PromotionDetail")
    field = schema["components"]["schemas"]["PromotionDetail"]["properties"]["canary"]
    assert "waits for a human" in field["description"]
    steps = schema["components"]["schemas"]["CanaryProgress"]["properties"]["steps"]
    assert steps["items"]["$ref"].endswith("/CanaryStep")
    assert "decided_by" in schema["components"]["schemas"]["StepDecision"]["properties"]
