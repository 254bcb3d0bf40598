"""Component runtime fields in the estate file: accepted with an effect, or refused with file,
line, field path and a fix (the effect on Docker is tested in tests/unit/targets/docker/)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from stella_operators.deploy.planner import plan_deployment
from stella_operators.estate import EstateError, parse_estate
from stella_operators.release.model import ComponentDigest, Release

D = "sha256:" + "a" * 64


def estate_with(component_yaml: str, extra_app: str = "") -> str:
    comp = textwrap.indent(textwrap.dedent(component_yaml).strip(), " " * 8)
    return textwrap.dedent("""
        version: 1
        registries: [{host: "reg.local:5000", scheme: http}]
        apps:
          - name: shop
            components:
              - name: web
                repository: reg.local:5000/demo/web
        """) + comp + "\n" + extra_app + textwrap.dedent("""
        environments:
          - name: dev
            targets: [{name: dev-1, type: docker, connection: c_dev_1}]
        """)


def problems(text: str) -> list[str]:
    with pytest.raises(EstateError) as info:
        parse_estate(text, source="estate.yaml")
    return str(info.value).splitlines()


FULL = """
role: primary
ports: [{target: 8080, published: 18080, host_ip: 127.0.0.1}, {target: 53, published: 5353, protocol: udp}]
networks: {front: {aliases: [shop-web]}, back: {}}
volumes: [{source: shop-data, target: /data}, {type: bind, source: /srv/conf, target: /conf, read_only: true}]
restart: on-failure
limits: {memory: 64m, cpus: 0.5, pids: 100}
env_from: {DB_PASSWORD: {connection: shop_db, field: password}, API_KEY: {variable: shop_api_key}}
env: {APP_ENV: dev}
"""


def test_every_runtime_field_reaches_the_component_spec_and_env_from_stays_a_reference():
    estate = parse_estate(estate_with(FULL))
    release = Release.seal(id="rel-1", app="shop", name="1.0", created_by="t", created_at=datetime.now(UTC),
                           components=[ComponentDigest(name="web", repository="reg.local:5000/demo/web", digest=D)])
    (plan,) = plan_deployment(estate, release, environment="dev", promotion_id="p", deployment_id="d")
    spec = plan.components[0]
    assert [(p.target, p.published, p.protocol, p.host_ip) for p in spec.ports] == [
        (8080, 18080, "tcp", "127.0.0.1"), (53, 5353, "udp", None)]
    assert spec.networks["front"].aliases == ["shop-web"] and list(spec.networks) == ["front", "back"]
    assert [(v.type, v.source, v.target, v.read_only) for v in spec.volumes] == [
        ("volume", "shop-data", "/data", False), ("bind", "/srv/conf", "/conf", True)]
    assert spec.restart_policy() == "on-failure"
    assert (spec.limits.memory, spec.limits.cpus, spec.limits.pids) == ("64m", 0.5, 100)
    assert spec.env_from["DB_PASSWORD"].describe() == "field 'password' of Airflow Connection 'shop_db'"
    assert spec.env_from["API_KEY"].variable == "shop_api_key"
    assert plan.run_timeout_s == estate.environment("dev").deploy_timeout_s


def test_network_list_short_form_and_role_defaults():
    estate = parse_estate(estate_with("networks: [front, back]\nrole: migration"))
    comp = estate.app("shop").components[0]
    assert list(comp.networks) == ["front", "back"] and comp.networks["front"].aliases == []
    assert comp.run_once and comp.restart_policy() == "no"
    assert parse_estate(estate_with("role: sidecar")).app("shop").components[0].restart_policy() == "unless-stopped"


@pytest.mark.parametrize(("fragment", "where", "says"), [
    ("volumes: [{type: bind, source: data/conf, target: /conf}]", "components[0].volumes[0]",
     "bind mount's source must be an absolute host path, got 'data/conf'"),
    ("volumes: [{source: /srv/x, target: /x}]", "components[0].volumes[0]", "a host path needs type: bind"),
    ("volumes: [{source: v, target: relative}]", "components[0].volumes[0]", "target must be an absolute"),
    ("volumes: [{source: a, target: /x}, {source: b, target: /x}]", "components[0]", "volumes mount '/x' twice"),
    ("ports: [{target: 80, published: 70000}]", "components[0].ports[0].published", "less than or equal to 65535"),
    ("ports: [{target: 80, published: 8080, host_ip: localhost}]", "components[0].ports[0].host_ip",
     "host_ip must be an IP address"),
    ("ports: [{target: 80, published: 8080}, {target: 81, published: 8080}]", "components[0]",
     "ports[1] publishes tcp port 8080 again"),
    ("role: migration\nports: [{target: 80, published: 8080}]", "components[0]", "cannot publish ports"),
    ("role: init\nrestart: always", "components[0]", "restart must be 'no'"),
    ("role: migration\nhealth: {command: [\"true\"]}", "components[0]", "remove health"),
    ("restart: sometimes", "components[0].restart", "not one of the allowed values"),
    ("limits: {memory: lots}", "components[0].limits.memory", "memory must be a number with an optional unit"),
    ("limits: {memory: 1k}", "components[0].limits.memory", "below 6m"),
    ("limits: {cpus: 0}", "components[0].limits.cpus", "greater than 0"),
    ("limits: {swap: 1g}", "components[0].limits.swap", "unknown key 'swap'"),
    ("env_from: {X: {connection: db}}", "components[0].env_from.X", "connection 'db' needs field"),
    ("env_from: {X: {connection: db, field: secret}}", "components[0].env_from.X",
     "field 'secret' is not one of password"),
    ("env_from: {X: {variable: v, connection: db, field: password}}", "components[0].env_from.X",
     "exactly one of connection"),
    ("env_from: {X: {variable: v}}\nenv: {X: plain}", "components[0]", "X is set in both env and env_from"),
    ("networks: {'bad name': {}}", "components[0].networks", "is not allowed here"),
])
def test_bad_runtime_fields_are_refused_with_path_and_fix(fragment, where, says):
    lines = problems(estate_with(fragment))
    assert len(lines) == 1, lines
    assert lines[0].startswith("estate.yaml:") and f"apps[0].{where}" in lines[0], lines
    assert says in lines[0], lines


def test_a_misspelt_port_key_is_named_with_the_allowed_keys():
    lines = problems(estate_with("ports: [{container: 80, published: 8080}]"))
    assert any("apps[0].components[0].ports[0].container: unknown key 'container'" in line
               and "host_ip, protocol, published, target" in line for line in lines), lines


def test_two_apps_publishing_the_same_port_on_the_same_targets_are_refused():
    other = textwrap.indent(textwrap.dedent("""
        - name: blog
          components:
            - {name: web, repository: reg.local:5000/demo/blog, ports: [{target: 80, published: 18080}]}
        """), "  ")
    lines = problems(estate_with("ports: [{target: 8080, published: 18080}]", other))
    assert len(lines) == 1 and "apps[1].components[0].ports[0].published" in lines[0], lines
    assert "tcp port 18080 is already published by shop/web" in lines[0] and "pick another" in lines[0]
    # ... but not when they never share a target
    apart = other.replace("- name: blog", "- name: blog\n    environments: []")
    parse_estate(estate_with("ports: [{target: 8080, published: 18080}]", apart))
