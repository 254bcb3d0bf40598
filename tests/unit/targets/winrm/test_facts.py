"""winrm facts: parse the facts script's output. Fixtures were recorded from the fake WinRM
endpoint's simulated PowerShell (devstack/fakes/winrm.py), not from Windows."""

from __future__ import annotations

from pathlib import Path

from stella_operators.targets.winrm.facts import parse_facts

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
SERVICES = {"web": "shop-web", "api": "shop-api"}
D1 = "sha256:" + "1" * 64


def _facts(name: str):
    return parse_facts("win-1", "shop", (FIXTURES / name).read_text(), SERVICES)


def test_nothing_switched_in_yet_is_no_component():
    facts = _facts("nothing_deployed.txt")
    assert facts.components == {} and facts.sticker is None


def test_a_running_service_reports_its_digest_and_sticker_and_a_missing_service_is_absent():
    facts = _facts("running.txt")
    assert set(facts.components) == {"web"}  # shop-api is not installed on the host
    web = facts.components["web"]
    assert (web.digest, web.healthy, web.workload_name) == (D1, True, "shop-web")
    assert facts.sticker is not None and facts.sticker.deployment_id == "dep-1"


def test_a_stopped_service_is_unhealthy():
    assert _facts("stopped.txt").components["web"].healthy is False
