"""Facts of a `compose` target, parsed from what the docker CLI on the host prints (pure, no I/O).

Three commands, each parsed here and unit-tested from recorded output (tests/unit/targets/compose/facts/):
  `docker compose -p P ps -a --format json`          -> containers of the project (ps_containers)
  `docker inspect --type container --format INSPECT`  -> labels, image id, state (inspected_containers)
  `docker image inspect --format IMAGE_DIGESTS`       -> repo digests of the images (image_repo_digests)
The inspect templates select only what facts need: a container's env (secrets) is never printed,
so it never reaches a log. Digests come from the image's RepoDigests, never from a label.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from stella_operators.targets.compose.lockfile import LABEL_COMPONENT, LABEL_DIGEST
from stella_operators.targets.contract import RunningComponent, TargetFacts, VersionSticker
from stella_operators.targets.docker.facts import image_digest

log = logging.getLogger(__name__)

LABEL_SERVICE = "com.docker.compose.service"
LABEL_STICKER = "stella.version.json"

INSPECT_FORMAT = ('{"Id":{{json .Id}},"Name":{{json .Name}},"Image":{{json .Image}},'
                  '"ConfigImage":{{json .Config.Image}},"Created":{{json .Created}},'
                  '"Labels":{{json .Config.Labels}},"State":{{json .State}}}')
IMAGE_DIGESTS_FORMAT = '{"Id":{{json .Id}},"RepoDigests":{{json .RepoDigests}}}'


class FactsError(ValueError):
    """Output of the docker CLI that does not parse: names the command."""


@dataclass(frozen=True)
class PsContainer:
    id: str
    service: str
    state: str          # running, exited, created, restarting, ...
    health: str         # healthy, unhealthy, starting, or "" without a health check


@dataclass(frozen=True)
class InspectedContainer:
    id: str
    name: str
    image_id: str
    config_image: str
    created: str
    labels: dict[str, str]
    running: bool
    status: str
    health: str | None   # None: no health check


def _json_lines(output: str, what: str) -> list[dict[str, Any]]:
    """compose v2 prints one JSON object per line (v2.21+) or one JSON array (older): take both."""
    text = output.strip()
    if not text:
        return []
    try:
        if text.startswith("["):
            data = json.loads(text)
            return [d for d in data if isinstance(d, dict)]
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise FactsError(f"{what}: unreadable output ({exc.msg} at line {exc.lineno})") from None


def ps_containers(output: str) -> list[PsContainer]:
    return [PsContainer(id=str(d.get("ID", "")), service=str(d.get("Service", "")), state=str(d.get("State", "")),
                        health=str(d.get("Health", "")))
            for d in _json_lines(output, "docker compose ps")]


def inspected_containers(output: str) -> list[InspectedContainer]:
    found = []
    for d in _json_lines(output, "docker inspect"):
        state = d.get("State") or {}
        health = state.get("Health")
        found.append(InspectedContainer(
            id=str(d["Id"]), name=str(d.get("Name", "")).lstrip("/"), image_id=str(d.get("Image", "")),
            config_image=str(d.get("ConfigImage", "")), created=str(d.get("Created", "")),
            labels={str(k): str(v) for k, v in (d.get("Labels") or {}).items()},
            running=bool(state.get("Running")), status=str(state.get("Status", "")),
            health=str(health.get("Status")) if isinstance(health, dict) else None))
    return found


def image_repo_digests(output: str) -> dict[str, list[str]]:
    return {str(d["Id"]): [str(r) for r in d.get("RepoDigests") or []]
            for d in _json_lines(output, "docker image inspect")}


def running_digest(config_image: str, repo_digests: list[str], hint: str | None) -> str | None:
    """The repo digest the container's image carries for the repository it was created from.
    `hint` (the stella.digest label) only picks among digests the image really carries."""
    repository = config_image.partition("@")[0] if "@" in config_image else None
    return image_digest({"RepoDigests": repo_digests}, repository, hint)


def build_facts(target: str, app: str, ps: list[PsContainer], inspected: list[InspectedContainer],
                digests: dict[str, list[str]]) -> TargetFacts:
    """Running containers of the project -> TargetFacts (the newest running container of a
    component wins; the sticker is the newest readable `stella.version.json` label)."""
    by_id = {c.id: c for c in inspected}
    running = []
    for p in ps:
        info = by_id.get(p.id) or next((c for c in inspected if c.id.startswith(p.id)), None)
        if info is not None and info.running:
            running.append(info)
    running.sort(key=lambda c: c.created)
    components: dict[str, RunningComponent] = {}
    sticker: VersionSticker | None = None
    for info in running:
        name = info.labels.get(LABEL_COMPONENT) or info.labels.get(LABEL_SERVICE)
        if not name:
            continue
        healthy = info.health == "healthy" if info.health is not None else info.running
        components[name] = RunningComponent(
            component=name, digest=running_digest(info.config_image, digests.get(info.image_id, []),
                                                  info.labels.get(LABEL_DIGEST)),
            workload_id=info.id, workload_name=info.name, healthy=healthy, labels=info.labels)
        raw = info.labels.get(LABEL_STICKER)
        if raw:
            try:
                sticker = VersionSticker.model_validate_json(raw)
            except ValueError:
                log.warning("%s: container %s carries an unreadable sticker label", target, info.name)
    return TargetFacts(target=target, app=app, components=components, sticker=sticker)
