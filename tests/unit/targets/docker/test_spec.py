"""ComponentSpec -> Engine API container config: each estate field has its Docker effect (pure)."""

from __future__ import annotations

from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, HealthCheck, VersionSticker
from stella_operators.targets.docker.spec import create_kwargs, extra_networks, free_name, restart_policy

D = "sha256:" + "b" * 64
COMP = ComponentDigest(name="web", repository="reg:5000/shop/web", digest=D)
STICKER = VersionSticker(app="shop", release_id="r1", release_name="1.0", content_hash="h", components=[COMP],
                         deployment_id="d1", promotion_id="p1", environment="prod", target="h1",
                         strategy="all_at_once", deployed_at="2026-11-30T00:00:00+00:00")
SECRET = "s3cret-value"


def spec(**fields) -> ComponentSpec:
    return ComponentSpec(component=COMP, **fields)


FULL = spec(
    ports=[{"target": 8080, "published": 18080, "host_ip": "127.0.0.1"},
           {"target": 8080, "published": 18081},
           {"target": 53, "published": 5353, "protocol": "udp"}],
    networks={"front": {"aliases": ["shop-web"]}, "back": {"aliases": ["web"]}},
    volumes=[{"source": "shop-data", "target": "/data"},
             {"type": "bind", "source": "/srv/conf", "target": "/conf", "read_only": True}],
    restart="on-failure", limits={"memory": "64m", "cpus": 0.5, "pids": 100},
    env_from={"DB_PASSWORD": {"connection": "db", "field": "password"}},
    health=HealthCheck(command=["true"]))


def test_every_field_maps_to_its_engine_setting():
    kw = create_kwargs(FULL, STICKER, name="stella-shop-web-bbbb", env={"DB_PASSWORD": SECRET})
    hc = kw["host_config"]
    assert kw["image"] == f"reg:5000/shop/web@{D}"
    assert kw["ports"] == [(53, "udp"), (8080, "tcp")]
    assert hc["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"},
                                               {"HostIp": "", "HostPort": "18081"}],
                                  "53/udp": [{"HostIp": "", "HostPort": "5353"}]}
    assert hc["Mounts"] == [{"Type": "volume", "Source": "shop-data", "Target": "/data", "ReadOnly": False},
                            {"Type": "bind", "Source": "/srv/conf", "Target": "/conf", "ReadOnly": True}]
    assert hc["NetworkMode"] == "front"
    assert kw["networking_config"] == {"EndpointsConfig": {"front": {"Aliases": ["shop-web"]}}}
    assert extra_networks(FULL) == ["back"]
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (64 * 1024 * 1024, 500_000_000, 100)
    # created with no restart policy: a crash while starting must show its exit code; the
    # configured policy is applied once healthy
    assert hc["RestartPolicy"] == {"Name": "no"}
    assert restart_policy(FULL) == {"Name": "on-failure", "MaximumRetryCount": 0}
    assert kw["healthcheck"]["test"] == ["CMD", "true"]
    # the resolved value goes to the environment only; labels carry the role, not a value
    assert kw["environment"] == {"DB_PASSWORD": SECRET}
    assert SECRET not in str(kw["labels"]) and kw["labels"]["stella.role"] == "primary"
    assert "stella.probe" not in kw["labels"]


def test_a_probe_publishes_nothing_and_takes_no_alias():
    kw = create_kwargs(FULL, STICKER, name="p", env={}, probe=True)
    assert "ports" not in kw and "PortBindings" not in kw["host_config"]
    assert kw["networking_config"] == {"EndpointsConfig": {"front": {}}}
    assert kw["labels"]["stella.probe"] == "1"
    assert kw["host_config"]["Mounts"] == create_kwargs(FULL, STICKER, name="x", env={})["host_config"]["Mounts"]


def test_plain_component_gets_the_default_bridge_and_defaults():
    kw = create_kwargs(spec(), STICKER, name="n", env={})
    assert kw["host_config"] == {"RestartPolicy": {"Name": "no"}}
    assert "networking_config" not in kw and "ports" not in kw and kw["healthcheck"] is None
    assert restart_policy(spec()) == {"Name": "unless-stopped"}
    assert restart_policy(spec(role="migration")) == {"Name": "no"}


def test_free_name_skips_names_held_by_old_containers():
    assert free_name("a", set()) == "a"
    assert free_name("a", {"a", "a-2"}) == "a-3"
