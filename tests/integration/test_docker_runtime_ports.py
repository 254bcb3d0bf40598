"""The Docker target's published ports against real dockerd hosts (tests/fixtures/docker_peer.py,
10.200.0.10 / .11) and a real registry: a published port answers HTTP from the root namespace on
every host, a release that fails (unhealthy, or after the switch) leaves the old one answering on
it, and moving the port moves the service.
"""

from __future__ import annotations

import httpx
import pytest

from stella_operators.targets.contract import DeployError
from stella_operators.targets.docker.target import DockerTarget
from tests.integration.docker_runtime_support import (  # noqa: F401 - *_fixture: fixtures
    PORT,
    answer,
    check_facts,
    cleanup_fixture,
    containers,
    deploy,
    ids,
    images_fixture,
    spec,
    targets_fixture,
)

pytestmark = pytest.mark.root


class TestPublishedPort:
    app = "portal"

    def specs(self, registry, digest):
        return [spec(registry, digest, ports=[{"target": 8080, "published": PORT}], restart="on-failure")]

    def test_v1_answers_on_the_published_port_of_every_host(self, targets, docker_hosts, docker_clients, lab_registry,
                                                            images, cleanup):
        cleanup[0].add(self.app)
        outcome = deploy(targets, self.app, self.specs(lab_registry, images["v1"]), "port-1")
        assert outcome.status == "deployed", outcome.error
        for host, client, target in zip(docker_hosts, docker_clients, targets, strict=True):
            assert answer(host) == "1.0.0\n"
            (c,) = containers(client, self.app)  # the probe is gone
            info = client.inspect_container(c["Id"])
            assert info["HostConfig"]["PortBindings"] == {"8080/tcp": [{"HostIp": "", "HostPort": str(PORT)}]}
            assert info["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
            check_facts("published_port_v1", target, self.app, {"web": (images["v1"], True)})

    def test_same_release_again_restarts_nothing(self, targets, docker_clients, lab_registry, images):
        before = [ids(c, self.app) for c in docker_clients]
        outcome = deploy(targets, self.app, self.specs(lab_registry, images["v1"]), "port-1b")
        assert outcome.status == "unchanged", outcome.error
        assert [ids(c, self.app) for c in docker_clients] == before

    def test_v2_takes_over_the_port(self, targets, docker_hosts, docker_clients, lab_registry, images):
        a = targets[0]
        looking = LooksAfterPrepare(a.name, a.api, pull_timeout_s=60, stop_timeout_s=1)
        looking.expected = {"web": (images["v1"], True)}
        outcome = deploy([looking, targets[1]], self.app, self.specs(lab_registry, images["v2"]), "port-2")
        assert outcome.status == "deployed", outcome.error
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host) == "2.0.0\n"
            assert len(containers(client, self.app)) == 1

    def test_unhealthy_release_never_touches_the_port(self, targets, docker_hosts, docker_clients, lab_registry,
                                                      images):
        before = [ids(c, self.app) for c in docker_clients]
        outcome = deploy(targets, self.app, self.specs(lab_registry, images["bad"]), "port-3", health_timeout_s=15)
        assert outcome.status == "rolled_back"
        assert "probe" in outcome.error and ("unhealthy" in outcome.error or "not healthy" in outcome.error)
        assert [ids(c, self.app) for c in docker_clients] == before
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host) == "2.0.0\n"
            assert len(containers(client, self.app)) == 1

    def test_failure_after_the_switch_restores_the_port_on_every_host(self, targets, docker_hosts, docker_clients,
                                                                       lab_registry, images):
        """Host a switches to v1 (old stopped, new bound to the port); host b switches too, then
        its engine 'fails': both must answer v2 again, from the very containers that were stopped."""
        before = [ids(c, self.app) for c in docker_clients]
        a, b = targets
        failing = FailsAfterSwitch(b.name, b.api, pull_timeout_s=60, stop_timeout_s=1)
        failing.expected = {"web": (images["v1"], True)}
        outcome = deploy([a, failing], self.app, self.specs(lab_registry, images["v1"]), "port-4")
        assert outcome.status == "rolled_back", outcome.error
        assert "engine connection lost" in outcome.error
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host) == "2.0.0\n"
            assert client.containers(all=True, filters={"label": "stella.deployment.id=port-4"}) == []
        assert [ids(c, self.app) for c in docker_clients] == before

    def test_changing_only_the_published_port_moves_the_service(self, targets, docker_hosts, docker_clients,
                                                                  lab_registry, images):
        moved = [spec(lab_registry, images["v2"], ports=[{"target": 8080, "published": PORT + 1}],
                      restart="on-failure")]
        outcome = deploy(targets, self.app, moved, "port-5")
        assert outcome.status == "deployed", outcome.error
        assert any("runs with other settings" in line or "started" in line for line in outcome.targets[0].log)
        for host, client in zip(docker_hosts, docker_clients, strict=True):
            assert answer(host, port=PORT + 1) == "2.0.0\n"
            with pytest.raises(httpx.TransportError):
                answer(host)
            assert len(containers(client, self.app)) == 1
        # and again: nothing to do
        assert deploy(targets, self.app, moved, "port-5b").status == "unchanged"


class LooksAfterPrepare(DockerTarget):
    """After prepare the probe runs v2 beside the old v1 and the real v2 container is created but
    not started: the facts (and the port) are still v1."""

    expected: dict[str, tuple[str, bool]]

    def prepare(self, plan):
        prepared = super().prepare(plan)
        assert prepared.switch_at_commit and prepared.started
        check_facts("probe_beside_old", self, plan.app, self.expected)
        assert answer_ip(self) == "1.0.0\n"  # the probe publishes nothing
        return prepared


class FailsAfterSwitch(DockerTarget):
    expected: dict[str, tuple[str, bool]]

    def commit(self, plan, prepared):
        super().commit(plan, prepared)
        assert answer_ip(self) == "1.0.0\n"  # really switched before failing
        check_facts("switched_old_kept_stopped", self, plan.app, self.expected)
        raise DeployError(self.name, "commit failed: engine connection lost")


def answer_ip(target: DockerTarget) -> str:
    ip = target.api.base_url.split("//", 1)[1].split(":", 1)[0]
    return httpx.get(f"http://{ip}:{PORT}/version", timeout=3).text
