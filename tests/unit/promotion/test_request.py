"""Requesting a promotion: what the service refuses before anything is recorded."""

from __future__ import annotations

import pytest

from stella_operators.estate.models import Estate
from stella_operators.ledger import Ledger
from stella_operators.promotion.service import (
    PromotionRefused,
    PromotionRequest,
    request_promotion,
)
from stella_operators.release.model import ComponentDigest
from stella_operators.release.service import cut_release

DIGEST = "sha256:" + "a" * 64
ESTATE = Estate.model_validate({
    "apps": [{"name": "shop", "components": [{"name": "web", "repository": "reg.local/demo/web"}]}],
    "environments": [{"name": "dev", "targets": [{"name": "dev-1", "type": "docker", "connection": "c"}]}],
})


@pytest.fixture
def ledger(tmp_path):
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.db'}") as led:
        release = cut_release(ESTATE, app="shop", name="shop-1", refs={"web": "1.0"}, created_by="ci",
                              resolve=lambda comp, repo, ref: ComponentDigest(name=comp.name, repository=repo,
                                                                              digest=DIGEST, tag=ref))
        led.add_release(release)
        yield led


def req(reason: str) -> PromotionRequest:
    return PromotionRequest(app="shop", environment="dev", release="shop-1", requested_by="admin", reason=reason)


@pytest.mark.parametrize("reason", ["", "   ", "\t\n  "])
def test_a_reason_of_white_space_is_refused_and_nothing_is_recorded(ledger, reason):
    with pytest.raises(PromotionRefused, match="give a reason"):
        request_promotion(ESTATE, ledger, req(reason))
    assert ledger.recent_promotions(10) == []


def test_the_reason_is_recorded_trimmed(ledger):
    promo = request_promotion(ESTATE, ledger, req("  hotfix for the checkout  \n"))
    assert ledger.get_promotion(promo.id).reason == "hotfix for the checkout"
