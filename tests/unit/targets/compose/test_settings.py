"""The compose target type: its settings, each with an effect on the commands run on the host."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stella_operators.targets.compose import TARGET_TYPE, ComposeSettings
from stella_operators.targets.compose.remote import RunResult
from stella_operators.targets.compose.target import ComposeTarget
from stella_operators.targets.contract import DeployError


class NoRemote:
    where = "root@h:22"


def target(**settings) -> ComposeTarget:
    return ComposeTarget("h1", NoRemote(), ComposeSettings(**settings))  # type: ignore[arg-type]


def test_the_type_names_its_peer_and_its_settings_model():
    assert TARGET_TYPE.name == "compose" and "sshd" in TARGET_TYPE.tested_against
    assert TARGET_TYPE.settings is ComposeSettings


def test_defaults_project_is_the_app_and_files_live_under_srv_stella():
    t = target()
    assert t.project("shop") == "shop" and t.folder("shop") == "/srv/stella/shop"
    assert t._compose("shop", "compose.stella.lock.yml", "up", "-d") == [
        "docker", "compose", "-p", "shop", "--project-directory", "/srv/stella/shop",
        "-f", "/srv/stella/shop/compose.stella.lock.yml", "up", "-d"]


def test_each_setting_changes_the_command():
    t = target(project="shop-blue", project_dir="/opt/shop", docker_host="unix:///run/h1/docker.sock",
               docker_cli="/usr/bin/docker", extra_files=["/etc/ops/net.yml"])
    assert t._compose("shop", "compose.stella.lock.yml", "pull") == [
        "env", "DOCKER_HOST=unix:///run/h1/docker.sock", "/usr/bin/docker", "compose", "-p", "shop-blue",
        "--project-directory", "/opt/shop", "-f", "/opt/shop/compose.stella.lock.yml", "-f", "/etc/ops/net.yml",
        "pull"]
    # without a file (ps, down) compose finds the project by name
    assert t._compose("shop", None, "ps")[-4:] == ["compose", "-p", "shop-blue", "ps"]


@pytest.mark.parametrize("bad", [{"project": "Shop!"}, {"project_dir": "relative/dir"},
                                 {"docker_host": "unix:///x; rm -rf /"}, {"extra_files": ["x.yml"]},
                                 {"docker_cli": "docker compose"}, {"command_timeout_s": 0},
                                 {"connect_attempts": 0}, {"unknown": 1}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValidationError):
        ComposeSettings(**bad)


class RecordingRemote:
    """Records the argv of each command and answers with a canned result."""

    where = "root@h:22"

    def __init__(self, status: int, stderr: str = ""):
        self.status, self.stderr, self.argv = status, stderr, []

    def run(self, argv, *, timeout_s, cancel=None):
        self.argv.append((list(argv), timeout_s))
        return RunResult(tuple(argv), self.status, "", self.stderr)


def test_every_command_is_bounded_on_the_host_by_command_timeout_s():
    remote = RecordingRemote(124)
    t = ComposeTarget("h1", remote, ComposeSettings(command_timeout_s=42))  # type: ignore[arg-type]
    with pytest.raises(DeployError, match=r"h1 \(root@h:22\): docker compose ps did not finish within 42 s"):
        t.facts("shop")
    argv, waited = remote.argv[0]
    assert argv[:4] == ["timeout", "-k", "5", "42"] and argv[4:6] == ["docker", "compose"] and waited > 42


def test_a_failed_command_names_the_host_and_hides_env_values():
    remote = RecordingRemote(1, "error: bad value hunter2-secret in env")
    t = ComposeTarget("h1", remote, ComposeSettings())  # type: ignore[arg-type]
    with pytest.raises(DeployError) as err:
        t._run(["docker", "compose", "up"], "docker compose up", secrets=["hunter2-secret"])
    assert "h1 (root@h:22): docker compose up failed: exit 1: error: bad value *** in env" == str(err.value)
