"""Browser fixtures: Debian's chromium driven by Playwright (no browser download), a real Airflow
stack started for the module, and screenshots kept as test artifacts.

Screenshots go to $STELLA_TEST_ARTIFACTS/browser (default: a fresh temporary directory); the path
is printed at the end of the run. Chromium, Playwright's driver and the Airflow stack are stopped
in `finally` blocks, also when a test fails.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("STELLA_CHROMIUM", "/usr/bin/chromium")
_ARTIFACTS: list[Path] = []


def _skip_reason() -> str | None:
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} missing (apt-get install chromium; scripts/setup.sh does)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "python package playwright missing (pip install -c constraints.txt -e .[test])"
    return None


@pytest.fixture(scope="session")
def artifacts() -> Path:
    root = os.environ.get("STELLA_TEST_ARTIFACTS") or tempfile.mkdtemp(prefix="stella-test-artifacts-")
    path = Path(root) / "browser"
    path.mkdir(parents=True, exist_ok=True)
    _ARTIFACTS.append(path)
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    for path in _ARTIFACTS:
        terminalreporter.write_line(f"browser screenshots: {path}")


@pytest.fixture(scope="module")
def ui_stack(registry, image_workdir, tmp_path_factory):
    """A real Airflow (api-server, scheduler, triggerer, dag-processor) over the shipped DAG folder."""
    from devstack.images import build_web_image
    from tests.integration.browser.stack import start_stack

    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    for tag in ("1.0.0", "1.1.0"):
        build_web_image(registry.host_port, "demo/web", tag, workdir=image_workdir, version=tag)
    stack = start_stack(tmp_path_factory.mktemp("ui-stack"), registry.host_port)
    try:
        stack.http = httpx.Client(base_url=stack.url, timeout=30)
        stack.tokens = {u: stack.http.post("/auth/token", json={"username": u, "password": p}).json()["access_token"]
                        for u, p in stack.passwords.items()}
        for dag_id in ("stella_release__shop", "stella_promote__shop__dev"):
            stack.wait_for_dag(dag_id, stack.tokens["admin"])
        yield stack
    finally:
        if hasattr(stack, "http"):
            stack.http.close()
        stack.stop()


@pytest.fixture(scope="module")
def browser(ui_stack) -> Iterator:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


class Person:
    """One signed-in user in their own browser context (own cookies)."""

    def __init__(self, browser, stack, user: str, artifacts: Path):
        self.user = user
        self.stack = stack
        self.artifacts = artifacts
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="Europe/Berlin")
        self.context.set_default_timeout(30_000)
        self.page = self.context.new_page()
        self.shots = 0
        self.errors: list[str] = []   # script errors on our pages fail the test that saw them
        self.page.on("pageerror", lambda exc: self.errors.append(f"{self.page.url}: {exc}"))

    def login(self) -> Person:
        page = self.page
        page.goto(self.stack.url + "/")
        page.get_by_label("Username").fill(self.user)
        page.get_by_label("Password").fill(self.stack.passwords[self.user])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/(\?.*)?$"))
        page.get_by_role("link", name="Dags").first.wait_for()
        return self

    def shot(self, name: str) -> Path:
        self.shots += 1
        path = self.artifacts / f"{self.user}-{self.shots:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def people(browser, ui_stack, artifacts) -> Iterator:
    opened = _OPEN

    def person(user: str) -> Person:
        if user not in opened:
            opened[user] = Person(browser, ui_stack, user, artifacts).login()
        return opened[user]

    try:
        yield person
    finally:
        for p in list(opened.values()):
            p.close()
        opened.clear()


_OPEN: dict[str, Person] = {}


@pytest.fixture(autouse=True)
def no_script_errors():
    """A script error on a page fails the test that saw it (the page may look fine and be broken)."""
    yield
    errors = [e for person in _OPEN.values() for e in person.errors]
    for person in _OPEN.values():
        person.errors.clear()
    assert not errors, "script errors in the browser:\n" + "\n".join(errors)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call" and report.failed:  # what each person saw when it went wrong
        for person in list(_OPEN.values()):
            try:
                person.shot(f"FAILED-{item.name}")
            except Exception:  # noqa: BLE001 - a failed screenshot must not hide the failure
                pass
            if person.errors:
                report.sections.append((f"script errors seen by {person.user}", "\n".join(person.errors)))
    return report
