"""Facts of a compose target from recorded docker CLI output (one folder per fact, one sub-folder per
recorded case; recorded on the compose lab: compose v2.40.3, dockerd 20.10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stella_operators.release.model import ComponentDigest
from stella_operators.targets.compose.facts import (
    FactsError,
    build_facts,
    image_repo_digests,
    inspected_containers,
    ps_containers,
    running_digest,
)
from stella_operators.targets.contract import ComponentSpec, TargetPlan
from stella_operators.targets.diff import diff

FACTS = Path(__file__).parent / "facts"
WEB = "sha256:49e30d9c53f1dd8a968f308b3c2e028aef828ebce3b8c07570b804f0cdd40060"
IMAGE_ID = "sha256:7c97f78b8210dbd21025a138102e7506e9a030ff7d6d6c6620b9ad8fc1a3bbc2"


def recorded(fact: str, case: str) -> str:
    return (FACTS / fact / case / "output.json").read_text()


def test_compose_ps_lists_the_project_containers_with_state_and_health():
    [c] = ps_containers(recorded("compose_ps", "one_healthy_web"))
    assert (c.id, c.service, c.state, c.health) == ("db3b655191d4", "web", "running", "healthy")


def test_compose_ps_also_reads_the_json_array_older_compose_printed_and_empty_output():
    line = recorded("compose_ps", "one_healthy_web").strip()
    assert ps_containers(f"[{line}]") == ps_containers(line)
    assert ps_containers("") == [] and ps_containers("\n") == []


def test_container_inspect_gives_labels_image_and_health_but_no_env():
    text = recorded("container_inspect", "one_healthy_web")
    [c] = inspected_containers(text)
    assert c.name == "shop-web-1" and c.image_id == IMAGE_ID and c.running and c.health == "healthy"
    assert c.labels["stella.deployment.id"] == "dep1" and c.config_image.endswith("@" + WEB)
    assert '"Env"' not in text  # the template never prints env (secrets)


def test_image_digests_are_the_repo_digests_of_each_image():
    assert image_repo_digests(recorded("image_digests", "one_healthy_web")) == {
        IMAGE_ID: [f"10.203.0.1:50753/demo/web@{WEB}"]}


def test_facts_join_the_three_outputs():
    facts = build_facts("x1", "shop", ps_containers(recorded("compose_ps", "one_healthy_web")),
                        inspected_containers(recorded("container_inspect", "one_healthy_web")),
                        image_repo_digests(recorded("image_digests", "one_healthy_web")))
    assert facts.digests() == {"web": WEB}
    web = facts.components["web"]
    assert web.healthy is True and web.workload_name == "shop-web-1"
    assert facts.sticker is not None and facts.sticker.deployment_id == "dep1" and facts.sticker.target == "x1"


def test_a_stopped_container_is_not_running_anything():
    inspect = recorded("container_inspect", "one_healthy_web").replace('"Running":true', '"Running":false')
    facts = build_facts("x1", "shop", ps_containers(recorded("compose_ps", "one_healthy_web")),
                        inspected_containers(inspect), image_repo_digests(recorded("image_digests", "one_healthy_web")))
    assert facts.components == {} and facts.sticker is None


def test_the_digest_comes_from_the_image_never_from_the_label():
    other = "sha256:" + "1" * 64
    assert running_digest(f"reg:5000/web@{WEB}", [f"reg:5000/web@{WEB}"], hint=other) == WEB
    assert running_digest(f"reg:5000/web@{WEB}", [f"reg:5000/other@{WEB}"], hint=WEB) is None
    assert running_digest("web:1.0", [f"docker.io/library/web@{WEB}", f"web@{other}"], hint=None) is None
    assert running_digest(f"docker.io/library/web@{WEB}", [f"web@{WEB}"], hint=None) == WEB


def test_unreadable_output_names_the_command():
    with pytest.raises(FactsError, match="docker compose ps: unreadable output"):
        ps_containers("Error: not json")


def facts_of(case: str):
    return build_facts("x1", "shop", ps_containers(recorded("compose_ps", case)),
                       inspected_containers(recorded("container_inspect", case)),
                       image_repo_digests(recorded("image_digests", case)))


def test_one_image_with_two_repo_digests_gives_each_service_the_digest_of_its_own_repository():
    facts = facts_of("two_healthy_services")
    assert facts.digests() == {"web": WEB, "api": WEB}
    assert {c: rc.labels["com.docker.compose.service"] for c, rc in facts.components.items()} == \
        {"web": "web", "api": "api"}


def test_an_unhealthy_service_is_seen_and_the_diff_restarts_it():
    facts = facts_of("one_unhealthy")
    bad = "sha256:03d296b9a208e2774d51c839330627670aedbebab5e170bdeaddf7d4b54f1c07"
    assert facts.digests() == {"web": bad, "api": WEB}
    assert facts.components["web"].healthy is False and facts.components["api"].healthy is True
    assert facts.sticker is not None and facts.sticker.deployment_id == "d2"  # the newest container's
    specs = tuple(ComponentSpec(component=ComponentDigest(name=n, repository=f"10.203.0.1:39849/demo/{n}", digest=d))
                  for n, d in (("web", bad), ("api", WEB)))
    plan = TargetPlan(app="shop", environment="dev", target="x1", deployment_id="d3", components=specs,
                      sticker=facts.sticker)
    assert {c.component: c.action for c in diff(facts, plan).changes} == {"web": "restart", "api": "keep"}
