"""Shared set-up of the ssh target tests: an estate folder with real deploy scripts, Connections as
AIRFLOW_CONN_* variables, targets built through the type's own `build`, plans for a release."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stella_operators.estate.models import TargetConfig
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, TargetPlan, VersionSticker
from stella_operators.targets.ssh import TARGET_TYPE
from stella_operators.targets.ssh.target import SshTarget
from tests.fixtures.ssh_peer import SshHost

SECRET = "s3cr3t 'quoted' $(not-run)"
# An argument full of shell syntax: it must reach the script as one literal argument.
NASTY_ARG = "it's $(touch PWNED); `touch PWNED2` \"x\" && echo"

# The "service": activate records the image it runs; status checks it is the current release's.
ACTIVATE = """#!/bin/sh
set -e
cp ./web.conf "$STELLA_BASE_DIR/../../etc/shop.conf"
if [ "$(cat "$STELLA_BASE_DIR/../../BREAK" 2>/dev/null)" = "$1" ]; then
  echo "activate refused: $1 is broken on this host" >&2; exit 7
fi
printf '%s\\n' "$1" > "$STELLA_BASE_DIR/running-$STELLA_COMPONENT"
printf '%s %s %s|%s|%s\\n' "$STELLA_DEPLOYMENT_ID" "$STELLA_COMPONENT" "$1" "$2" "$DB_PASSWORD" \
  >> "$STELLA_BASE_DIR/activations.log"
"""
STATUS = ["sh", "-c", 'test "$(cat "$STELLA_BASE_DIR/running-$STELLA_COMPONENT")" = "$STELLA_IMAGE"']
DEACTIVATE = ["sh", "-c", 'rm -f "$STELLA_BASE_DIR/running-$STELLA_COMPONENT"']


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class World:
    root: Path              # per test; each host gets root/<host name> with a space and a quote in it
    estate_dir: Path
    hosts: list[SshHost]
    key: Path
    built: list[SshTarget] = field(default_factory=list)

    def host_root(self, host: str) -> Path:
        return self.root / f"host {host}'s files"

    def base(self, host: str, app: str = "shop") -> Path:
        return self.host_root(host) / "srv" / app

    def settings(self, host: str, **over: Any) -> dict[str, Any]:
        s: dict[str, Any] = {
            "base_dir": str(self.host_root(host) / "srv" / "{app}"),
            "artifacts": [{"source": "deploy/activate.sh", "dest": "bin/activate", "mode": "0755"},
                          {"source": "deploy/web.conf", "dest": "web.conf"}],
            "components": {
                c: {"activate": ["bin/activate", "{image}", NASTY_ARG], "status": STATUS, "deactivate": DEACTIVATE}
                for c in ("web", "worker")},
            "backup_paths": [str(self.host_root(host) / "etc" / "shop.conf")],
            "command_timeout_s": 20, "connect_timeout_s": 5, "keep_releases": 2,
        }
        s.update(over)
        return s

    def connection(self, monkeypatch: pytest.MonkeyPatch, conn_id: str, host: SshHost, **extra: Any) -> None:
        ex = {"key_file": str(self.key), "host_key": host.host_key(), **extra}
        ex = {k: v for k, v in ex.items() if v is not None}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(
            {"conn_type": "ssh", "host": host.ip, "port": 22, "login": "root", "extra": ex}))

    def target(self, monkeypatch: pytest.MonkeyPatch, host: SshHost, *, cls: type[SshTarget] = SshTarget,
               settings: dict[str, Any] | None = None, **extra: Any) -> SshTarget:
        conn_id = f"ssh_{host.name}"
        self.connection(monkeypatch, conn_id, host, **extra)
        cfg = TargetConfig(name=host.name, type="ssh", connection=conn_id,
                           settings=settings or self.settings(host.name))
        built = TARGET_TYPE.build(cfg, TARGET_TYPE.settings.model_validate(cfg.settings))
        assert isinstance(built, SshTarget)
        if cls is not SshTarget:
            built.__class__ = cls
        self.built.append(built)
        return built

    def close(self) -> None:
        for t in self.built:
            t.close()


def make_world(tmp_path: Path, hosts: list[SshHost], key: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    estate = tmp_path / "estate"
    (estate / "deploy").mkdir(parents=True)
    (estate / "deploy" / "activate.sh").write_text(ACTIVATE)
    (estate / "deploy" / "web.conf").write_text("listen 8080\n")
    monkeypatch.setenv("STELLA_ESTATE", str(estate / "estate.yaml"))
    world = World(tmp_path / "hosts", estate, hosts, key)
    for h in hosts:
        (world.host_root(h.name) / "etc").mkdir(parents=True)
    return world


def plan(target: str, *, release: str, deployment: str, web: str, worker: str, app: str = "shop") -> TargetPlan:
    comps = [ComponentDigest(name="web", repository="reg.example:5000/shop/web", digest=web, tag=release),
             ComponentDigest(name="worker", repository="reg.example:5000/shop/worker", digest=worker, tag=release)]
    sticker = VersionSticker(
        app=app, release_id=f"rel-{release}", release_name=release, content_hash=digest(web + worker),
        components=comps, deployment_id=deployment, promotion_id=f"promo-{deployment}", environment="stage",
        target=target, strategy="all_at_once", deployed_at=datetime.now(UTC).isoformat())
    specs = tuple(ComponentSpec(component=c, env={"DB_PASSWORD": SECRET}) for c in comps)
    return TargetPlan(app=app, environment="stage", target=target, deployment_id=deployment, components=specs,
                      sticker=sticker)
