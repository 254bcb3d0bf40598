"""A compose target in an estate file: its `settings:` block is checked at estate load, with the path."""

from __future__ import annotations

import pytest

from stella_operators.estate import checks
from stella_operators.estate.errors import EstateError
from stella_operators.estate.loader import parse_estate
from stella_operators.targets import registry
from stella_operators.targets.compose import TARGET_TYPE, ComposeSettings

ESTATE = """
registries: [{host: "reg:5000", scheme: http}]
apps:
  - name: shop
    components: [{name: web, repository: "reg:5000/shop/web"}]
environments:
  - name: prod
    targets:
      - {name: web-1, type: compose, connection: ssh_web_1, settings: %s}
"""


@pytest.fixture(autouse=True)
def compose_installed(monkeypatch):
    """The venv is installed from main: until it is reinstalled with this pyproject.toml, the
    `compose` entry point is not registered there, so the type is added the way it will be found."""
    types = {**registry.target_types(), "compose": TARGET_TYPE}
    monkeypatch.setattr(registry, "target_types", lambda: types)
    monkeypatch.setattr(checks, "known_target_types", lambda: set(types))


def test_a_compose_target_with_its_settings_loads():
    estate = parse_estate(ESTATE % "{project: shop, docker_host: 'unix:///run/docker.sock', "
                                   "extra_files: [/etc/ops/shop.yml]}", source="estate.yaml")
    target = estate.environments[0].targets[0]
    settings = registry.validate_settings(target.type, dict(target.settings))
    assert isinstance(settings, ComposeSettings) and settings.extra_files == ["/etc/ops/shop.yml"]


@pytest.mark.parametrize(("settings", "path", "message"), [
    ("{project_dir: srv/shop}", "settings.project_dir", "should match pattern"),
    ("{compose_file: x.yml}", "settings.compose_file", "unknown key 'compose_file' for a compose target (allowed: "),
    ("{docker_host: 'http://h:2375'}", "settings.docker_host", "should match pattern"),
])
def test_bad_settings_name_the_file_and_the_key(settings, path, message):
    with pytest.raises(EstateError) as err:
        parse_estate(ESTATE % settings, source="estate.yaml")
    text = str(err.value)
    assert "estate.yaml" in text and f"environments[0].targets[0].{path}" in text and message in text


@pytest.mark.parametrize("component, field", [
    ("{name: web, repository: 'reg:5000/shop/web', env_from: {DB_PASSWORD: {connection: db, field: password}}}",
     "env_from"),
    ("{name: migrate, repository: 'reg:5000/shop/web', role: migration}", "role"),
])
def test_what_compose_targets_do_not_implement_yet_is_refused_with_its_path(component, field):
    text = ESTATE.replace('components: [{name: web, repository: "reg:5000/shop/web"}]', f"components: [{component}]")
    with pytest.raises(EstateError) as err:
        parse_estate(text % "{}", source="estate.yaml")
    assert f"apps[0].components[0].{field}: {field} is not yet supported by compose targets (environment 'prod', " \
           "target 'web-1')" in str(err.value)
