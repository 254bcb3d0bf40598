"""compose.stella.lock.yml: rendered from the plan through one function, checksummed, verified."""

from __future__ import annotations

import hashlib
import re

import pytest
import yaml

from stella_operators.release.model import ComponentDigest
from stella_operators.targets.compose.lockfile import (
    LockFileError,
    emit_yaml,
    env_file_text,
    read_lock,
    render_lock,
    render_service,
    stella_block,
)
from stella_operators.targets.contract import ComponentSpec, HealthCheck, VersionSticker

DIGEST = "sha256:" + "a" * 64
COMP = ComponentDigest(name="web", repository="reg.example:5000/shop/web", digest=DIGEST, tag="1.2.3")
STICKER = VersionSticker(app="shop", release_id="rel-1", release_name="shop-1.2.3", content_hash="sha256:" + "b" * 64,
                         components=[COMP], deployment_id="dep-1", promotion_id="promo-1", environment="prod",
                         target="h1", strategy="all_at_once", deployed_at="2026-11-30T00:00:00+00:00")
SPEC = ComponentSpec(component=COMP, command=["sh", "-c", "echo $HOME; exit 0"], env={"DB_PASSWORD": "s3cret"},
                     health=HealthCheck(command=["wget", "-q", "http://127.0.0.1/health"], interval_s=0.5))


def lock_text() -> str:
    service = render_service(SPEC, STICKER, env_file="env/dep-1/web.env")
    return render_lock("shop", {"web": service}, stella_block(STICKER), {"web": COMP.tag})


def test_a_service_is_pinned_by_digest_with_the_sticker_labels_and_no_env_value():
    svc = render_service(SPEC, STICKER, env_file="env/dep-1/web.env")
    assert svc["image"] == f"reg.example:5000/shop/web@{DIGEST}"
    assert svc["env_file"] == [{"path": "env/dep-1/web.env", "format": "raw"}] and "environment" not in svc
    assert svc["labels"]["stella.deployment.id"] == "dep-1" and svc["labels"]["stella.component"] == "web"
    assert svc["labels"]["stella.digest"] == DIGEST
    assert svc["healthcheck"]["test"][0] == "CMD" and svc["healthcheck"]["interval"] == "500ms"


def test_dollars_are_escaped_so_compose_never_interpolates_a_value():
    assert render_service(SPEC, STICKER, env_file=None)["command"] == ["sh", "-c", "echo $$HOME; exit 0"]


def test_the_file_has_the_tag_only_as_a_comment_and_no_secret():
    text = lock_text()
    assert f'image: "reg.example:5000/shop/web@{DIGEST}"  # tag 1.2.3' in text
    assert "s3cret" not in text and ":1.2.3" not in text


def test_the_checksum_is_sha256_of_the_file_with_the_checksum_blanked():
    text = lock_text()
    lock = read_lock(text)
    blanked = re.sub(r'(?m)^  checksum: .*$', '  checksum: ""', text)
    assert lock.checksum == "sha256:" + hashlib.sha256(blanked.encode()).hexdigest()
    assert lock.deployment_id == "dep-1" and lock.stella["release_id"] == "rel-1" and lock.name == "shop"
    assert lock.env_files() == {"env/dep-1/web.env"}


def test_a_changed_byte_fails_verification_and_says_so():
    text = lock_text().replace("unless-stopped", "always")
    with pytest.raises(LockFileError, match="h1.lock: checksum mismatch.*changed by hand"):
        read_lock(text, source="h1.lock")


def test_a_file_without_exactly_one_checksum_line_is_refused():
    with pytest.raises(LockFileError, match="exactly one x-stella checksum line, found 0"):
        read_lock("services: {}\n")
    doubled = lock_text() + '  checksum: "sha256:' + "0" * 64 + '"\n'
    with pytest.raises(LockFileError, match="found 2"):
        read_lock(doubled)


def test_the_emitter_round_trips_through_a_yaml_parser():
    data = {"name": "x", "services": {"true": {"a": ["1", 2, None, True], "b": {}, "c": "quote \" and \\ and \n",
                                               "l": [{"path": "p", "format": "raw"}, {"path": "q"}]}},
            "x-stella": {"checksum": ""}}
    assert yaml.safe_load(emit_yaml(data)) == data


def test_env_files_hold_values_verbatim_and_refuse_a_line_break_naming_only_the_key():
    assert env_file_text({"B": "x=$y 'q'", "A": "1"}, "h1") == "A=1\nB=x=$y 'q'\n"
    with pytest.raises(ValueError, match="h1: env var TOKEN holds a line break") as err:
        env_file_text({"TOKEN": "line1\nline2"}, "h1")
    assert "line1" not in str(err.value)


def test_runtime_settings_render_into_the_lock_file_as_compose_reads_them(tmp_path):
    """Ports, networks with aliases, volumes, restart and limits map 1:1 onto compose's long syntax;
    `docker compose config` (the real compose v2 CLI) reads the lock file back with the same meaning."""
    import json
    import subprocess

    from tests.integration.test_compose_stack import compose_command

    spec = ComponentSpec.model_validate({**SPEC.model_dump(),
        "ports": [{"target": 8080, "published": 18080, "host_ip": "127.0.0.1"}],
        "networks": {"front": {"aliases": ["shop-web"]}, "back": {}},
        "volumes": [{"type": "volume", "source": "shop-data", "target": "/data"},
                    {"type": "bind", "source": "/srv/shop/conf", "target": "/conf", "read_only": True}],
        "restart": "on-failure", "limits": {"memory": "256m", "cpus": 0.5, "pids": 100}})
    text = render_lock("shop", {"web": render_service(spec, STICKER, env_file=None)}, stella_block(STICKER),
                       {"web": COMP.tag})
    assert read_lock(text).services["web"]["restart"] == "on-failure"
    compose = compose_command()
    if compose is None:
        pytest.skip("compose v2 CLI not installed (scripts/setup.sh installs it)")
    (tmp_path / "compose.stella.lock.yml").write_text(text)
    out = subprocess.run([*compose, "-f", str(tmp_path / "compose.stella.lock.yml"), "config", "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cfg = json.loads(out.stdout)
    web = cfg["services"]["web"]
    assert web["ports"] == [{"mode": "ingress", "host_ip": "127.0.0.1", "target": 8080, "published": "18080",
                             "protocol": "tcp"}]
    assert web["networks"] == {"back": None, "front": {"aliases": ["shop-web"]}}
    assert cfg["networks"]["front"]["name"] == "front" and cfg["volumes"]["shop-data"]["name"] == "shop-data"
    assert [(v["type"], v["source"], v.get("read_only", False)) for v in web["volumes"]] == [
        ("volume", "shop-data", False), ("bind", "/srv/shop/conf", True)]
    assert web["restart"] == "on-failure"
    assert web["deploy"]["resources"]["limits"] == {"cpus": 0.5, "memory": "268435456", "pids": 100}
