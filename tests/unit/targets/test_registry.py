"""Target types are found, their settings validated and targets built in one place."""

from __future__ import annotations

import pytest

from stella_operators.estate.errors import EstateError
from stella_operators.estate.loader import parse_estate
from stella_operators.targets.registry import TargetSettingsError, target_type, target_types, validate_settings

ESTATE = """
registries: [{host: "reg:5000", scheme: http}]
apps:
  - name: shop
    components: [{name: web, repository: "reg:5000/shop/web"}]
environments:
  - name: dev
    targets:
      - {name: h1, type: docker, connection: h1, settings: %s}
"""


def test_docker_is_installed_with_a_summary_and_its_peer():
    kind = target_types()["docker"]
    assert kind.name == "docker" and "dockerd" in kind.tested_against


def test_unknown_type_names_the_installed_ones():
    with pytest.raises(KeyError, match="installed: .*docker"):
        target_type("kubernetes")


def test_a_settings_key_the_type_does_not_know_is_refused_with_its_path():
    with pytest.raises(TargetSettingsError) as err:
        validate_settings("docker", {"project_dir": "/srv"})
    assert err.value.path == "project_dir" and "unknown key 'project_dir' for a docker target" in err.value.message
    with pytest.raises(EstateError) as err2:
        parse_estate(ESTATE % "{project_dir: /srv}", source="estate.yaml")
    text = str(err2.value)
    assert "estate.yaml" in text and "environments[0].targets[0].settings.project_dir" in text


def test_an_empty_settings_block_is_fine():
    assert parse_estate(ESTATE % "{}", source="estate.yaml").environments[0].targets[0].settings == {}
