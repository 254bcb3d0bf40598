"""The compose target type: its settings, each with an effect on the commands run on the host."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stella_operators.targets.compose import TARGET_TYPE, ComposeSettings
from stella_operators.targets.compose.target import ComposeTarget


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
