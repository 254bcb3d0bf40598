"""`winrm` target: a Windows host whose services run versioned app folders, over WinRM.

prepare  - per changed component: pull the image by digest, copy its `image_path` out into a new
           version folder `<root>\\<app>\\<component>\\<hex12>` with stella.digest and the sticker
           beside it. The service and the running version are not touched.
commit   - per component: stop the service, write the backup pointer (previous.txt), switch the
           `current` junction to the new folder, start the service, wait until it runs.
discard  - remove the version folders prepare made.
restore  - from the host's own state: switch each component whose running digest is not the
           previous one back to the previous version folder (kept until finalize); idempotent.
finalize - remove every version folder but the running one.
Scripts come from scripts.py (every argument quoted); their output is parsed by facts.py.
"""

from __future__ import annotations

import logging
import time

from stella_operators.targets.api_target import ApiTarget
from stella_operators.targets.contract import DeployError, PreparedChange, TargetFacts, TargetPlan
from stella_operators.targets.diff import diff
from stella_operators.targets.winrm import WinrmSettings
from stella_operators.targets.winrm.facts import parse_facts
from stella_operators.targets.winrm.scripts import (
    component_dir,
    facts_script,
    fetch_script,
    list_script,
    remove_script,
    switch_script,
    version_name,
)

log = logging.getLogger(__name__)


class WinrmTarget(ApiTarget[WinrmSettings]):
    """A Windows host. `client` is a `winrm.Session` (WinrmHook(...).get_conn() in Airflow). It has
    no cancel(): a prepare in flight runs its scripts (each bounded by command_timeout_s) to the end."""

    kind = "winrm"

    def run(self, what: str, script: str) -> str:
        """Run a PowerShell script; DeployError with PowerShell's own error text when it fails."""
        try:
            result = self.client.run_ps(script)
        except Exception as exc:  # noqa: BLE001 - transport errors (auth, connection) name themselves
            raise DeployError(self.name, f"{what}: {type(exc).__name__}: {exc}") from None
        if result.status_code != 0:
            err = result.std_err.decode("utf-8", "replace").strip() or result.std_out.decode("utf-8", "replace")
            raise DeployError(self.name, f"{what}: exit {result.status_code}: {err.strip()[-500:]}")
        return str(result.std_out.decode("utf-8", "replace"))

    def base(self, app: str, component: str) -> str:
        return component_dir(self.settings.root, app, component)

    def facts(self, app: str) -> TargetFacts:
        out = self.run("cannot read the services", facts_script(self.settings.root, app, self.settings.services))
        return parse_facts(self.name, app, out, self.settings.services)

    # prepare / commit / discard ------------------------------------------------------------------
    def _prepare(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        for spec in plan.components:
            name = spec.component.name
            if name not in self.settings.services:
                raise DeployError(self.name, f"{name}: no Windows service named for it; add it to the target's "
                                  "settings.services (component -> service name)")
            if spec.command is not None or spec.env or spec.health is not None:
                raise DeployError(self.name, f"{name}: a winrm target runs the service as installed (its command, "
                                  "environment and recovery are the service's); remove command/env/health")
        changes = diff(self.facts(plan.app), plan)
        sticker = plan.sticker.model_dump_json()
        for c in changes.changes:
            if c.action == "keep":
                prepared.unchanged.append(c.component)
                continue
            spec = next(s for s in plan.components if s.component.name == c.component)
            base, new = self.base(plan.app, c.component), version_name(c.new)
            t0 = time.monotonic()
            if c.action != "restart":
                self.run(f"{c.component}: cannot fetch {spec.component.ref}", fetch_script(
                    f"{base}\\{new}", spec.component.ref, c.new, self.settings.image_path, sticker,
                    f"stella-{plan.app}-{c.component}-{new}"))
                prepared.log.append(f"{c.component}: {spec.component.ref} copied to {base}\\{new}")
            prepared.started[c.component] = new
            prepared.to_retire[c.component] = [version_name(c.current)] if c.current else []
            prepared.timings_ms[f"{c.component}.fetch"] = int((time.monotonic() - t0) * 1000)

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        for component, new in prepared.started.items():
            previous = next(iter(prepared.to_retire.get(component) or []), None)
            service = self.settings.services[component]
            try:
                self.run(f"{component}: cannot switch service {service!r} to {new}", switch_script(
                    self.base(plan.app, component), service, new, previous, self.settings.start_timeout_s))
            except DeployError as exc:
                raise DeployError(self.name, str(exc).removeprefix(f"{self.name}: "), prepared=prepared) from None
            prepared.log.append(f"{component}: service {service} runs {new} (previous: {previous or 'none'})")

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        folders = [f"{self.base(plan.app, c)}\\{new}" for c, new in prepared.started.items()
                   if new not in (prepared.to_retire.get(c) or [])]
        if folders:
            self.run("cannot remove the prepared versions", remove_script(folders))
            prepared.log.append(f"removed {len(folders)} prepared version folder(s)")

    # restore / finalize ----------------------------------------------------------------------------
    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        facts = self.facts(plan.app)
        for spec in plan.components:
            component = spec.component.name
            want = previous.get(component)
            running = facts.components.get(component)
            if running is not None and running.digest == want and running.healthy:
                continue
            if running is None and want is None:
                continue
            base, service = self.base(plan.app, component), self.settings.services[component]
            if want is not None:
                kept = self.run(f"{component}: cannot list versions", list_script(base)).split()
                if version_name(want) not in kept:
                    raise DeployError(self.name, f"{component}: the previous version {version_name(want)} is no "
                                      f"longer in {base}: cannot restore it (redeploy that release)")
            self.run(f"{component}: cannot switch service {service!r} back", switch_script(
                base, service, version_name(want) if want else None, None, self.settings.start_timeout_s))
            log.info("%s: %s restored to %s", self.name, component, want or "nothing")

    def finalize(self, plan: TargetPlan) -> None:
        facts = self.facts(plan.app)
        for spec in plan.components:
            component = spec.component.name
            running = facts.components.get(component)
            if running is None or running.digest is None:
                continue
            base = self.base(plan.app, component)
            keep = version_name(running.digest)
            old = [n for n in self.run(f"{component}: cannot list versions", list_script(base)).split()
                   if n not in (keep, "current")]
            if old:
                self.run(f"{component}: cannot remove old versions", remove_script([f"{base}\\{n}" for n in old]))
