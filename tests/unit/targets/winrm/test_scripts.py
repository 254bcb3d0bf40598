"""winrm PowerShell scripts: every argument is a single-quoted literal (pure, no host)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stella_operators.targets.winrm import WinrmSettings
from stella_operators.targets.winrm.scripts import fetch_script, ps_quote, switch_script


def test_ps_quote_doubles_every_kind_of_single_quote_and_expands_nothing():
    assert ps_quote("plain") == "'plain'"
    assert ps_quote("it's") == "'it''s'"
    assert ps_quote("a\u2019b") == "'a\u2019\u2019b'"  # PowerShell ends a string at typographic quotes too
    assert ps_quote("$(Remove-Item C:\\) `n $env:PATH") == "'$(Remove-Item C:\\) `n $env:PATH'"


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_ps_quote_refuses_line_breaks(bad):
    with pytest.raises(ValueError, match="line break or NUL"):
        ps_quote(bad)


def test_fetch_and_switch_scripts_quote_every_value_and_stop_on_errors():
    fetch = fetch_script("C:\\stella\\o'app\\web\\111", "reg/x@sha256:" + "1" * 64, "sha256:" + "1" * 64,
                         "C:\\app", '{"k": "it\'s"}', "stella-o'app-web-111")
    assert fetch.startswith("$ErrorActionPreference = 'Stop'")
    assert "Remove-Item -LiteralPath 'C:\\stella\\o''app\\web\\111' -Recurse -Force" in fetch
    assert "docker create --name 'stella-o''app-web-111' 'reg/x@sha256:" in fetch
    assert "-Value '{\"k\": \"it''s\"}'" in fetch
    assert "if ($LASTEXITCODE -ne 0) { throw 'docker pull failed: reg/x@sha256:" in fetch
    switch = switch_script("C:\\s\\web", "Shop's web", "222", "111", 12.5)
    assert "Stop-Service -Name 'Shop''s web' -Force" in switch
    assert "-Value '111'" in switch and "-Target 'C:\\s\\web\\222'" in switch
    assert "WaitForStatus('Running', [TimeSpan]::FromSeconds(12))" in switch


def test_settings_need_services_and_absolute_windows_paths():
    with pytest.raises(ValidationError, match="at least 1 item"):
        WinrmSettings(services={})
    with pytest.raises(ValidationError, match="absolute Windows path"):
        WinrmSettings(services={"web": "w"}, root="stella")
    with pytest.raises(ValidationError, match="extra"):
        WinrmSettings.model_validate({"services": {"web": "w"}, "restart": True})
    assert WinrmSettings(services={"web": "w"}, root="D:\\apps\\").root == "D:\\apps"
