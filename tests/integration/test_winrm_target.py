"""The `winrm` target against a FAKE WS-Management endpoint (devstack/fakes/winrm.py: the
Create/Command/Receive/Signal/Delete requests pywinrm sends, Basic auth over plaintext HTTP, and a
simulated PowerShell + Windows host that understands only the statements our scripts use), NOT
against Windows or WinRM.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import winrm

from devstack.fakes.winrm import FakeWinRM
from stella_operators.estate.models import TargetConfig
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import ComponentSpec, DeployError, TargetPlan, VersionSticker
from stella_operators.targets.winrm import TARGET_TYPE, WinrmSettings
from stella_operators.targets.winrm.target import WinrmTarget
from tests.fixtures.cloud_peers import WINRM_PASSWORD, WINRM_USER

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
REPO = "reg.example/shop/web"
BASE = "C:\\stella\\shop\\web"


def _host(fake: FakeWinRM, service: str = "shop-web") -> None:
    fake.host.mkdir(BASE)
    fake.host.add_service(service, BASE + "\\current")
    fake.host.images.update({f"{REPO}@{D1}": {"app.exe": b"v1"}, f"{REPO}@{D2}": {"app.exe": b"v2"},
                             f"{REPO}@{D3}": {"app.exe": b"v3", "CRASH": b""}})


def _plan(digest: str, deployment: str = "dep-1") -> TargetPlan:
    comp = ComponentDigest(name="web", repository=REPO, digest=digest, tag="2.0")
    sticker = VersionSticker(app="shop", release_id="r", release_name="2.0", content_hash="h", components=[comp],
                             deployment_id=deployment, promotion_id="p1", environment="prod", target="win-1",
                             strategy="all_at_once", deployed_at="2026-11-30T00:00:00+00:00")
    return TargetPlan(app="shop", environment="prod", target="win-1", deployment_id=deployment,
                      components=(ComponentSpec(component=comp),), sticker=sticker)


def _target(fake: FakeWinRM, password: str = WINRM_PASSWORD, **settings: Any) -> WinrmTarget:
    session = winrm.Session(fake.url, auth=(WINRM_USER, password), transport="basic")
    return WinrmTarget("win-1", session, WinrmSettings(**{"services": {"web": "shop-web"}, **settings}))


def _deploy(target: WinrmTarget, plan: TargetPlan) -> None:
    target.commit(plan, target.prepare(plan))


def _running_file(fake: FakeWinRM) -> bytes:
    return fake.host.files[fake.host.resolve(BASE + "\\current\\app.exe").lower()]


def test_prepare_copies_the_version_beside_and_commit_switches_the_service(fake_winrm, monkeypatch):
    """Against the fake WinRM endpoint, not Windows: built through an Airflow Connection (basic
    auth over http), a first deployment, an upgrade with its backup pointer, a converging re-run,
    finalize; every WinRM shell is closed again."""
    _host(fake_winrm)
    monkeypatch.setenv("AIRFLOW_CONN_WIN_1", json.dumps({
        "conn_type": "stella_winrm", "host": "127.0.0.1", "port": fake_winrm.port, "schema": "http",
        "login": WINRM_USER, "password": WINRM_PASSWORD, "extra": {"transport": "basic"}}))
    settings = {"services": {"web": "shop-web"}, "start_timeout_s": 10}
    target = TARGET_TYPE.build(TargetConfig(name="win-1", type="winrm", connection="win_1", settings=settings),
                               WinrmSettings(**settings))
    assert isinstance(target, WinrmTarget)
    assert target.facts("shop").components == {}

    first = _plan(D1)
    prepared = target.prepare(first)
    assert fake_winrm.host.services["shop-web"] == "Stopped"  # prepare never touches the service
    assert fake_winrm.host.exists(BASE + "\\111111111111\\app.exe")
    target.commit(first, prepared)
    assert fake_winrm.host.services["shop-web"] == "Running" and _running_file(fake_winrm) == b"v1"

    upgrade = _plan(D2, "dep-2")
    prepared = target.prepare(upgrade)
    assert _running_file(fake_winrm) == b"v1"
    target.commit(upgrade, prepared)
    assert _running_file(fake_winrm) == b"v2"
    assert fake_winrm.host.files[(BASE + "\\previous.txt").lower()] == b"111111111111"
    facts = target.facts("shop")
    assert facts.components["web"].digest == D2 and facts.components["web"].healthy is True
    assert facts.sticker is not None and facts.sticker.deployment_id == "dep-2"

    pulls = sum("docker pull" in s for s in fake_winrm.host.statements)
    again = target.prepare(upgrade)
    assert not again.changed and sum("docker pull" in s for s in fake_winrm.host.statements) == pulls
    target.finalize(upgrade)
    assert not fake_winrm.host.exists(BASE + "\\111111111111") and fake_winrm.host.exists(BASE + "\\222222222222")
    assert fake_winrm.open_shells == 0


def test_a_service_that_does_not_start_is_restored_to_the_previous_version(fake_winrm):
    """Against the fake WinRM endpoint, not Windows: the new version crashes on start; restore
    (from the host's own state) switches back to the kept folder; a second restore does nothing."""
    _host(fake_winrm)
    target = _target(fake_winrm)
    _deploy(target, _plan(D1))
    bad = _plan(D3, "dep-3")
    prepared = target.prepare(bad)
    with pytest.raises(DeployError, match="cannot switch service 'shop-web' to 333333333333: exit 1: .*cannot be "
                                          "started"):
        target.commit(bad, prepared)
    assert fake_winrm.host.services["shop-web"] == "Stopped"
    target.restore(bad, {"web": D1})
    assert fake_winrm.host.services["shop-web"] == "Running" and _running_file(fake_winrm) == b"v1"
    scripts = len(fake_winrm.host.scripts)
    target.restore(bad, {"web": D1})
    assert len(fake_winrm.host.scripts) == scripts + 1  # only the facts script ran
    target.discard(bad, prepared)
    assert not fake_winrm.host.exists(BASE + "\\333333333333") and fake_winrm.host.exists(BASE + "\\111111111111")


def test_arguments_reach_powershell_literally_whatever_they_hold(fake_winrm):
    """Against the fake WinRM endpoint, not Windows: a service name with a quote, `$(...)` and a
    `;` is one literal argument (PowerShell single-quote rules), never code."""
    nasty = "Shop's $(Remove-Item C:\\stella -Recurse); web"
    _host(fake_winrm, service=nasty)
    target = _target(fake_winrm, services={"web": nasty})
    _deploy(target, _plan(D1))
    assert fake_winrm.host.services[nasty] == "Running"
    assert fake_winrm.host.exists("C:\\stella")
    assert any("'Shop''s $(Remove-Item C:\\stella -Recurse); web'" in s for s in fake_winrm.host.scripts)


def test_bad_credentials_and_an_unknown_image_are_named(fake_winrm):
    """Against the fake WinRM endpoint, not Windows."""
    _host(fake_winrm)
    with pytest.raises(DeployError, match="cannot read the services: InvalidCredentialsError"):
        _target(fake_winrm, password="wrong").facts("shop")
    with pytest.raises(DeployError, match=r"cannot fetch reg.example/other@sha256:4{64}: exit 1: docker pull failed"):
        target = _target(fake_winrm)
        comp = ComponentDigest(name="web", repository="reg.example/other", digest="sha256:" + "4" * 64)
        plan = _plan(D1)
        target.prepare(TargetPlan(app="shop", environment="prod", target="win-1", deployment_id="d",
                                  components=(ComponentSpec(component=comp),), sticker=plan.sticker))
    with pytest.raises(DeployError, match="no Windows service named for it; add it to the target's settings.services"):
        _target(fake_winrm, services={"api": "shop-api"}).prepare(_plan(D1))
