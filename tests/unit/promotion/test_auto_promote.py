"""Automatic promotions check the upstream promotion an Asset event names in the ledger (issue 6 item 3).

The end-to-end version (REST-posted events, real scheduler) is tests/integration/test_auto_promote.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stella_operators.estate.loader import parse_estate
from stella_operators.ledger import Ledger
from stella_operators.promotion.auto_promote import UpstreamEvent, check_upstream_event
from stella_operators.promotion.service import PromotionRefused
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.release.model import ComponentDigest, Release

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
ESTATE = parse_estate("""
registries: [{host: "reg.local:5000", scheme: http}]
apps:
  - name: shop
    components: [{name: web, repository: reg.local:5000/shop/web}]
environments:
  - name: dev
    targets: [{name: dev-1, type: docker, connection: c_dev}]
  - name: stage
    auto_promote: true
    targets: [{name: stage-1, type: docker, connection: c_stage}]
  - name: prod
    auto_promote: true
    targets: [{name: prod-1, type: docker, connection: c_prod}]
""")


@pytest.fixture()
def ledger(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as led:
        yield led


def release(ledger, n: int) -> Release:
    return ledger.add_release(Release.seal(
        id=f"rel-{n}", app="shop", name=f"shop-1.{n}.0", created_at=T0, created_by="ci",
        components=[ComponentDigest(name="web", repository="reg.local:5000/shop/web", digest=f"sha256:{n:064x}")]))


def promote(ledger, env: str, rel: Release, by: str, until: S = S.DEPLOYED):
    p = ledger.create_promotion(app="shop", environment=env, release_id=rel.id, requested_by=by, reason="t",
                                dag_id=f"stella_promote__shop__{env}", run_id=f"manual__{rel.id}")
    path = [S.EVALUATING, S.APPROVED, S.DEPLOYING, S.VERIFYING, S.DEPLOYED]
    for status in path[:path.index(until) + 1]:
        ledger.transition(p.id, status, actor="stella")
    return ledger.get_promotion(p.id)


def event(promo=None, **extra) -> UpstreamEvent:
    if promo is not None:
        extra = {"promotion_id": promo.id, "release_id": promo.release_id, **extra}
    return UpstreamEvent(asset="x-stella://shop/dev", extra=extra, timestamp=T0)


def refused(ledger, events, match: str, environment: str = "stage") -> None:
    with pytest.raises(PromotionRefused, match=match):
        check_upstream_event(ESTATE, ledger, "shop", environment, events)


def test_genuine_event_requests_the_release_on_behalf_of_the_upstream_requester(ledger):
    p = promote(ledger, "dev", release(ledger, 1), by="alice")
    ev = UpstreamEvent(asset="x-stella://shop/dev", extra={"promotion_id": p.id}, source_dag_id=p.dag_id,
                       source_run_id=p.run_id, source_task_id="verify", timestamp=T0)
    auto = check_upstream_event(ESTATE, ledger, "shop", "stage", [ev])
    assert (auto.release_id, auto.requested_by) == ("rel-1", "alice")
    assert auto.trigger["posted_by"] == {"via": "task", "dag_id": p.dag_id, "run_id": p.run_id,
                                         "task_id": "verify", "at": "2026-01-05T09:00:00Z"}


def test_forged_events_are_refused(ledger):
    r1, r2 = release(ledger, 1), release(ledger, 2)
    old = promote(ledger, "dev", r1, by="alice")
    current = promote(ledger, "dev", r2, by="alice")
    refused(ledger, [event(release_id=r1.id)], "names no upstream promotion")
    refused(ledger, [event(promotion_id="prm-nope")], "which the ledger does not know")
    refused(ledger, [event(old)], "the release dev verified last is shop-1.2.0")
    refused(ledger, [event(current, release_id=r1.id)], "says release 'rel-1'")
    refused(ledger, [event(current)], "not upstream of prod", environment="prod")   # dev is not prod's upstream
    forged_run = UpstreamEvent(asset="x-stella://shop/dev", extra={"promotion_id": current.id},
                               source_dag_id="some_other_dag", source_run_id="r", timestamp=T0)
    refused(ledger, [forged_run], "was posted by some_other_dag/r")
    waiting = promote(ledger, "dev", release(ledger, 3), by="bob", until=S.APPROVED)
    refused(ledger, [event(waiting)], "which is approved, not deployed")


def test_the_newest_event_of_a_run_decides(ledger):
    r1, r2 = release(ledger, 1), release(ledger, 2)
    first, second = promote(ledger, "dev", r1, by="alice"), promote(ledger, "dev", r2, by="carol")
    later = UpstreamEvent(asset="x-stella://shop/dev", extra={"promotion_id": second.id},
                          timestamp=T0 + timedelta(minutes=5))
    auto = check_upstream_event(ESTATE, ledger, "shop", "stage", [later, event(first)])
    assert (auto.upstream.id, auto.requested_by) == (second.id, "carol")
