"""Router `none`: the traffic share is the share of targets running the release."""

from __future__ import annotations

import pytest

from stella_operators.deploy.canary import none_route, targets_at
from stella_operators.routing import RouterError
from stella_operators.routing.none import ROUTER_TYPE, NoneRouter

NAMES = ["t1", "t2", "t3", "t4"]


def test_distribution_is_the_share_of_targets_per_group():
    router = NoneRouter()
    router.configure(none_route(NAMES, targets_at(NAMES, 10)))
    router.shift("release", 10)  # 10 % of 4 targets, rounded up: one runs the release
    assert router.distribution() == {"release": 25, "previous": 75}
    assert router.healthy("release") == {"t1": True}


def test_a_share_the_targets_do_not_give_is_refused():
    router = NoneRouter()
    router.configure(none_route(NAMES, ["t1"]))
    with pytest.raises(RouterError, match="50 % of 4 targets is 2 running release, the route has 1"):
        router.shift("release", 50)


def test_it_is_a_router_type_without_settings():
    assert ROUTER_TYPE.name == "none"
    with pytest.raises(ValueError, match="Extra inputs"):
        ROUTER_TYPE.settings.model_validate({"socket": "/x"})
    assert isinstance(ROUTER_TYPE.build(ROUTER_TYPE.settings()), NoneRouter)
