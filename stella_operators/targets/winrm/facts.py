"""Parse the winrm facts script's output (scripts.facts_script) into TargetFacts. No I/O."""

from __future__ import annotations

from stella_operators.release.refs import DIGEST_RE
from stella_operators.targets.contract import RunningComponent, TargetFacts, VersionSticker
from stella_operators.targets.winrm.scripts import MARK

STATUSES = ("Running", "Stopped", "StartPending", "StopPending", "Paused", "PausePending", "ContinuePending")


def parse_facts(target: str, app: str, stdout: str, services: dict[str, str]) -> TargetFacts:
    """A component runs when its service exists and a version was switched in: digest from its
    stella.digest, healthy when the service is Running. A missing service is not a component."""
    components: dict[str, RunningComponent] = {}
    sticker: VersionSticker | None = None
    blocks: dict[str, list[str]] = {}
    name = None
    for raw in stdout.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith(MARK):
            name = line[len(MARK):]
            blocks[name] = []
        elif name is not None and line:
            blocks[name].append(line)
    for component, lines in blocks.items():
        status = next((x for x in lines if x in STATUSES), None)
        digest = next((x for x in lines if DIGEST_RE.match(x)), None)
        raw_sticker = next((x for x in lines if x.startswith("{")), None)
        if status is None or (digest is None and raw_sticker is None):
            continue  # no service, or nothing switched in yet: nothing stella deployed runs
        components[component] = RunningComponent(
            component=component, digest=digest, workload_id=services.get(component, component),
            workload_name=services.get(component, component), healthy=status == "Running")
        if raw_sticker and sticker is None:
            try:
                sticker = VersionSticker.model_validate_json(raw_sticker)
            except ValueError:
                sticker = None
    return TargetFacts(target=target, app=app, components=components, sticker=sticker)
