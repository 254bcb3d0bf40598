"""`POST /stella/api/v1/promotions/{id}/abort` through Airflow's own API app (real JWTs, real auth
manager users, plugin app in-process), on a real SQLite ledger."""

from __future__ import annotations

import json
import textwrap

import pytest

from stella_operators.ledger import Ledger
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.promotion.fakes import World

ESTATE = textwrap.dedent("""
    registries: [{host: reg.local}]
    approver_groups:
      - {name: release-managers, users: [bob]}
    apps:
      - name: shop
        components: [{name: web, repository: reg.local/shop/web}]
    environments:
      - name: prod
        approvals: {required: 1, groups: [release-managers]}
        targets: [{name: a, type: docker, connection: stella_docker_nowhere}]
""")


@pytest.fixture
def world(tmp_path, monkeypatch):
    (tmp_path / "estate.yaml").write_text(ESTATE)
    monkeypatch.setenv("STELLA_ESTATE", str(tmp_path / "estate.yaml"))
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER",
                       json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "ledger.db")}))
    w = World(tmp_path)  # releases and promotions in the same ledger file the API opens
    yield w
    w.ledger.close()


def abort(api, promotion_id: str, user: str, reason="picked the wrong release", **kw):
    return api.request("POST", f"/stella/api/v1/promotions/{promotion_id}/abort", user=user,
                       json={"reason": reason} if reason is not None else {}, **kw)


def test_abort_answers_200_403_409_422_and_needs_auth(airflow_api, world):
    promo = world.approved(1, by="alice")
    r = abort(airflow_api, promo.id, "carol")            # not the requester, not an approver, not admin
    assert r.status_code == 403 and "carol may not abort" in r.json()["detail"]
    assert "only its requester (alice)" in r.json()["detail"]
    assert abort(airflow_api, promo.id, "alice", reason="   ").status_code == 422
    assert abort(airflow_api, promo.id, "alice", reason=None).status_code == 422
    r = airflow_api.request("POST", f"/stella/api/v1/promotions/{promo.id}/abort", user=None,
                            json={"reason": "no login"})
    assert r.status_code == 401
    r = airflow_api.request("POST", f"/stella/api/v1/promotions/{promo.id}/abort", user=None,
                            cookies={"_token": airflow_api.token("alice")}, json={"reason": "cross-site"})
    assert r.status_code == 403 and "X-Requested-With" in r.text
    assert Ledger(world.ledger.url).get_promotion(promo.id).status == S.APPROVED

    r = abort(airflow_api, promo.id, "bob")               # an approver of prod
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "cancelled" and body["abort"]["by"] == "bob" and body["abort"]["from_status"] == "approved"
    assert body["id"] == promo.id and body["release"]["name"] == "shop-1.0.0"
    ev = world.ledger.get_evidence(body["abort"]["evidence_id"])
    assert ev.content["reason"] == "picked the wrong release" and ev.content["by"] == "bob"

    r = abort(airflow_api, promo.id, "admin")
    assert r.status_code == 409 and "already ended as cancelled" in r.json()["detail"]
    assert abort(airflow_api, "prm-missing", "admin").status_code == 404


def test_a_stuck_deploying_promotion_is_rolled_back_by_an_admin(airflow_api, world):
    promo = world.approved(1, by="alice")
    world.ledger.transition(promo.id, S.DEPLOYING, actor="stella")  # its worker died before it touched a host
    r = abort(airflow_api, promo.id, "admin", reason="stuck since last night")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "rolled_back"
    types = [str(e.type) for e in world.ledger.evidence_for(promotion_id=promo.id)]
    assert types == ["rollback", "promotion"]
