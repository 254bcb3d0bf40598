"""The per-app estate load that task starts use: only the app's part, cached by content hash."""

import textwrap

import pytest

from stella_operators.estate.errors import EstateError
from stella_operators.estate.loader import load_estate, load_estate_for_app

ESTATE = textwrap.dedent("""
    registries: [{host: "reg.local:5000", scheme: http}]
    apps:
      - {name: shop, components: [{name: web, repository: reg.local:5000/demo/web}]}
      - {name: blog, components: [{name: web, repository: reg.local:5000/demo/blog}]}
    environments:
      - name: dev
        targets: [{name: dev-1, type: docker, connection: c_dev}]
""")


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("STELLA_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_only_the_app_asked_for(tmp_path, home):
    f = tmp_path / "estate.yaml"
    f.write_text(ESTATE)
    estate = load_estate_for_app(f, "blog")
    assert [a.name for a in estate.apps] == ["blog"] and [e.name for e in estate.environments] == ["dev"]
    with pytest.raises(EstateError, match="no app 'gone' in the estate"):
        load_estate_for_app(f, "gone")


def test_a_changed_file_is_never_served_from_the_cache(tmp_path, home):
    f = tmp_path / "estate.yaml"
    f.write_text(ESTATE)
    assert load_estate_for_app(f, "shop").app("shop").components[0].repository == "reg.local:5000/demo/web"
    assert len(list((home / "cache").glob("estate-*.json"))) == 1
    f.write_text(ESTATE.replace("demo/web}", "demo/web2}"))
    assert load_estate_for_app(f, "shop").app("shop").components[0].repository == "reg.local:5000/demo/web2"
    # a broken edit is reported with its line, as by the full load
    f.write_text(ESTATE.replace("connection: c_dev", "conection: c_dev"))
    with pytest.raises(EstateError) as exc:
        load_estate_for_app(f, "shop")
    assert "estate.yaml:8: environments[0].targets[0].conection: unknown key" in str(exc.value)


def test_a_corrupt_cache_file_is_ignored(tmp_path, home):
    f = tmp_path / "estate.yaml"
    f.write_text(ESTATE)
    load_estate_for_app(f, "shop")
    (cache,) = (home / "cache").glob("estate-*.json")
    cache.write_text('{"sha256": "x", "data": {"apps": []}')
    assert load_estate_for_app(f, "shop").apps[0].name == "shop"


def test_yaml_values_json_cannot_carry_are_not_cached(tmp_path, home):
    f = tmp_path / "estate.yaml"
    f.write_text(ESTATE + textwrap.indent(textwrap.dedent("""
        gates:
          - type: freeze
            windows: [{name: x, kind: deny, timezone: UTC, start: 2026-12-24T00:00:00, end: 2026-12-27T00:00:00}]
    """), "    "))
    windows = load_estate_for_app(f, "shop").environment("dev").gates[0]["windows"]
    assert windows == load_estate(f).environment("dev").gates[0]["windows"]
    assert not list((home / "cache").glob("estate-*.json"))  # (glob of a missing folder is empty)
