"""The `settings:` block of an ssh target: what is accepted, and what is refused with a reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stella_operators.targets.ssh.settings import SshSettings

WEB = {"activate": ["bin/activate", "{image}"]}


def settings(**over):
    return SshSettings.model_validate({"components": {"web": WEB}, **over})


def test_a_realistic_block_validates_and_base_dir_takes_the_app_name():
    s = settings(base_dir="/srv/{app} files/",
                 artifacts=[{"source": "deploy/web.service", "dest": "units/web.service"}],
                 backup_paths=["/etc/systemd/system/web.service"], known_hosts_file="/etc/stella/known_hosts")
    assert s.base_for("shop") == "/srv/shop files"
    assert s.artifacts[0].mode == "0644" and s.keep_releases == 3 and s.insecure_demo is False


@pytest.mark.parametrize("argv, needle", [
    (["run", "{imag}"], "unknown placeholder {imag}"),
    (["run", "{image!r}"], "unknown placeholder {image}"),
    (["run", "line\nbreak"], "String should match pattern"),
    ([], "at least 1 item"),
])
def test_commands_with_unknown_placeholders_or_control_characters_are_refused(argv, needle):
    with pytest.raises(ValidationError, match=needle.replace("{", r"\{").replace("}", r"\}")):
        settings(components={"web": {"activate": argv}})


def test_braces_are_written_doubled():
    assert settings(components={"web": {"activate": ["jq", "{{}}"]}}).components["web"].activate == ["jq", "{{}}"]


def test_status_may_not_use_per_release_placeholders():
    with pytest.raises(ValidationError, match=r"status may use .* not \{image\}.*STELLA_IMAGE"):
        settings(components={"web": {**WEB, "status": ["check", "{image}"]}})
    assert settings(components={"web": {**WEB, "status": ["systemctl", "is-active", "{app}-{component}"]}})


@pytest.mark.parametrize("dest", ["/etc/passwd", "../up", "a/../../b", ".stella/web.env", "stella.version.json"])
def test_artifact_destinations_stay_inside_the_release_dir(dest):
    with pytest.raises(ValidationError, match="relative path inside the release dir"):
        settings(artifacts=[{"source": "x", "dest": dest}])


def test_an_artifact_destination_given_twice_is_refused():
    with pytest.raises(ValidationError, match="dest a given more than once"):
        settings(artifacts=[{"source": "x", "dest": "a"}, {"source": "y", "dest": "./a"}])


@pytest.mark.parametrize("over, needle", [
    ({"base_dir": "srv/app"}, "String should match pattern"),
    ({"base_dir": "/srv/../etc"}, "without '..'"),
    ({"base_dir": "/srv/{release}"}, "unknown placeholder"),
    ({"keep_releases": 1}, "greater than or equal to 2"),
    ({"command_timeout_s": 0}, "greater than 0"),
    ({"backup_paths": ["etc/x"]}, "String should match pattern"),
    ({"components": {}}, "at least 1 item"),
    ({"components": {"Web App": WEB}}, "String should match pattern"),
    ({"sudo": True}, "Extra inputs are not permitted"),
])
def test_bad_values_are_refused(over, needle):
    with pytest.raises(ValidationError, match=needle):
        settings(**over)
