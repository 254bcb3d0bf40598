"""Docker facts parsed from recorded Engine API answers (no dockerd): one fixture folder per fact.

fixtures/app_facts/*.json     `GET /containers/json` + `docker inspect` of each container and its
                              image, recorded from the real lab hosts by
                              `STELLA_RECORD_DOCKER_FACTS=DIR pytest tests/integration/test_docker_runtime*.py`;
                              `expected` is what that test knew runs (env values blanked)
fixtures/image_digest/*.json  `docker inspect` of a recorded image, some with RepoDigests edited
                              to the shapes noted in each file
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from stella_operators.targets.docker.facts import DockerObservation, image_digest, parse_facts

FIXTURES = Path(__file__).parent / "fixtures"
APP_FACTS = sorted((FIXTURES / "app_facts").glob("*.json"))
IMAGE_DIGEST = sorted((FIXTURES / "image_digest").glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def observation(case: dict) -> DockerObservation:
    obs = case["observation"]
    return DockerObservation(containers=obs["containers"], inspected=obs["inspected"], images=obs["images"])


def test_every_fact_has_fixtures():
    assert len(APP_FACTS) >= 6 and len(IMAGE_DIGEST) >= 6


@pytest.mark.parametrize("path", APP_FACTS, ids=lambda p: p.stem)
def test_app_facts_from_recorded_engine_answers(path):
    case = load(path)
    facts = parse_facts(case["target"], case["app"], observation(case))
    got = {c: {"digest": rc.digest, "healthy": rc.healthy} for c, rc in facts.components.items()}
    assert got == case["expected"]
    assert (facts.sticker.release_name if facts.sticker else None) == case["sticker_release"]
    for name, rc in facts.components.items():
        assert rc.component == name and rc.workload_id in case["observation"]["inspected"]
        assert not rc.workload_name.endswith("-probe")


def test_a_probe_beside_the_old_container_is_not_a_fact():
    case = load(FIXTURES / "app_facts" / "probe_beside_old.json")
    states = sorted((c["State"], bool(c["Labels"].get("stella.probe"))) for c in case["observation"]["containers"])
    assert states == [("created", False), ("running", False), ("running", True)]  # the recording is what we think
    facts = parse_facts(case["target"], case["app"], observation(case))
    assert facts.sticker.release_name == "port-1"  # the old one's, not the probe's


def test_a_completed_migration_counts_and_a_failed_one_does_not():
    case = load(FIXTURES / "app_facts" / "failed_migration_beside_completed.json")
    exited = [c for c in case["observation"]["containers"] if c["Labels"].get("stella.component") == "migrate"]
    assert sorted(c["Status"].split(")")[0] for c in exited) == ["Exited (0", "Exited (4"]
    facts = parse_facts(case["target"], case["app"], observation(case))
    kept = facts.components["migrate"]
    assert case["observation"]["inspected"][kept.workload_id]["State"]["ExitCode"] == 0
    # the sticker comes from the running web, not from the newer failed run
    assert facts.sticker is not None and facts.sticker.release_name == "mig-1"


def test_the_image_decides_the_digest_whatever_the_label_says():
    case = load(FIXTURES / "app_facts" / "label_lies_and_unhealthy.json")
    (summary,) = case["observation"]["containers"]
    assert summary["Labels"]["stella.digest"] != case["expected"]["web"]["digest"]
    # without the image (removed under a running container) the digest cannot be trusted
    obs = observation(case)
    obs.images = {}
    assert parse_facts(case["target"], case["app"], obs).components["web"].digest is None


def test_newest_running_container_wins_and_stopped_ones_are_history():
    case = load(FIXTURES / "app_facts" / "switched_old_kept_stopped.json")
    states = sorted(c["State"] for c in case["observation"]["containers"])
    assert states == ["exited", "running"]
    facts = parse_facts(case["target"], case["app"], observation(case))
    assert facts.components["web"].workload_id == next(c["Id"] for c in case["observation"]["containers"]
                                                       if c["State"] == "running")
    # what a restore leaves: the new one removed, the stopped old one started again
    obs = observation(case)
    new = next(c for c in obs.containers if c["State"] == "running")
    old = next(c for c in obs.containers if c["State"] == "exited")
    obs.containers = [dict(old, State="running")]
    obs.inspected = {old["Id"]: copy.deepcopy(obs.inspected.get(old["Id"]) or _running(case, old, new))}
    facts = parse_facts(case["target"], case["app"], obs)
    assert facts.components["web"].workload_id == old["Id"]


def _running(case: dict, old: dict, new: dict) -> dict:
    """gather() inspects only containers that count; rebuild the old one's inspect from the new one's."""
    info = copy.deepcopy(case["observation"]["inspected"][new["Id"]])
    info.update(Id=old["Id"], Name=old["Names"][0], Image=old["ImageID"])
    info["Config"] = dict(info["Config"], Labels=old["Labels"], Image=old["Image"])
    return info


def test_containers_of_other_apps_or_without_component_are_ignored():
    case = load(FIXTURES / "app_facts" / "published_port_v1.json")
    obs = observation(case)
    (summary,) = obs.containers
    stranger = dict(summary, Id="f" * 64, Labels={**summary["Labels"], "stella.app": "other"})
    anonymous = dict(summary, Id="e" * 64, Labels={"stella.app": case["app"]})
    obs.containers = [summary, stranger, anonymous]
    obs.inspected = {**obs.inspected, "f" * 64: obs.inspected[summary["Id"]], "e" * 64: obs.inspected[summary["Id"]]}
    facts = parse_facts(case["target"], case["app"], obs)
    assert list(facts.components) == ["web"] and facts.components["web"].workload_id == summary["Id"]


@pytest.mark.parametrize("path", IMAGE_DIGEST, ids=lambda p: p.stem)
def test_image_digest(path):
    case = load(path)
    assert image_digest(case["image"], case["repository"], case["hint"]) == case["expected"], case["note"]
