"""The /stella REST API through Airflow's real FastAPI app (in-process): bad input answers 4xx
with what is allowed, never 500; what needs Airflow auth and what does not, as Airflow does it."""

import pytest

from stella_operators.api.app import app as stella_app
from stella_operators.promotion.state import PromotionStatus

PUBLIC = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}  # FastAPI's own, schema only


@pytest.fixture()
def api(airflow_api, tmp_path, monkeypatch):
    monkeypatch.setenv("STELLA_HOME", str(tmp_path / "stella"))  # an empty ledger of its own
    return airflow_api


def test_a_bad_status_answers_422_with_the_allowed_values(api):
    r = api.request("GET", "/stella/api/v1/promotions", user="alice", params={"status": "bogus"})
    assert r.status_code == 422, r.text
    for s in PromotionStatus:
        assert f"'{s.value}'" in r.text
    r = api.request("GET", "/stella/api/v1/promotions", user="alice", params={"status": "rolled_back"})
    assert r.status_code == 200 and r.json() == {"promotions": []}


@pytest.mark.parametrize("params", [{"app": "Shop; drop"}, {"environment": "../prod"}, {"app": "x" * 300}])
def test_bad_filters_answer_422_naming_the_rule(api, params):
    r = api.request("GET", "/stella/api/v1/promotions", user="alice", params=params)
    assert r.status_code == 422, r.text
    assert "should match pattern" in r.text


@pytest.mark.parametrize("url", ["/stella/api/v1/board?limit=0", "/stella/api/v1/board?limit=many",
                                 "/stella/api/v1/promotions/" + "x" * 300, "/stella/api/v1/evidence/" + "e" * 300])
def test_other_bad_values_answer_422(api, url):
    assert api.request("GET", url, user="alice").status_code == 422


@pytest.mark.parametrize("url", ["/stella/api/v1/promotions/prm-unknown", "/stella/api/v1/promotions/a%20b%27%22",
                                 "/stella/api/v1/evidence/ev:unknown", "/stella/api/v1/evidence/%25%00x"])
def test_unknown_ids_answer_404(api, url):
    r = api.request("GET", url, user="alice")
    assert r.status_code == 404, r.text


def test_openapi_is_as_public_as_airflows_own_and_nothing_else_is(api):
    """Decision: Airflow 3.3 serves its own /openapi.json and /docs without authentication (checked
    here against the real app), so ours does too: a schema, no data. Every other route needs auth."""
    airflows = api.request("GET", "/openapi.json", user=None)
    ours = api.request("GET", "/stella/openapi.json", user=None)
    assert airflows.status_code == ours.status_code == 200
    assert "/api/v1/promotions" in ours.json()["paths"]
    for route in stella_app.routes:
        if route.path in PUBLIC:
            continue
        url = "/stella" + route.path.replace("{promotion_id}", "prm-x").replace("{evidence_id}", "ev-x")
        for method in route.methods - {"HEAD"}:
            r = api.request(method, url, user=None, json={"decision": "approve"} if method == "POST" else None)
            assert r.status_code == 401, (method, url, r.status_code)
