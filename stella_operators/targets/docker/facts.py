"""Facts of a `docker` target: what runs for an app, at which digest, with which sticker.

Split in two so the interpretation is unit-tested from recorded Engine API outputs
(tests/unit/targets/docker/fixtures/<fact>/, no dockerd needed):

    gather(api, app) -> DockerObservation   the raw JSON: `GET /containers/json` (the app's
                                            containers), `docker inspect` of each and of its image
    parse_facts(target, app, observation) -> TargetFacts   pure

Rules (why):
- the digest comes from the image's RepoDigests, never from the `stella.digest` label (a label
  can lie; the image cannot);
- running containers count; a run-once component (`stella.role` init / migration) counts when its
  container exited with code 0 (it ran to completion: a re-run leaves it alone);
- `stella.config.fingerprint` says with which settings it was started (diff: reconfigure when
  the plan's differ); containers started before it existed carry none (never reconfigured);
- probes (`stella.probe`, a new container health-checked beside the old one) are not facts;
- when several containers qualify for a component, the newest wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from docker import errors as docker_errors
from stella_operators.targets.contract import RunningComponent, TargetFacts, VersionSticker
from stella_operators.targets.docker.spec import (
    LABEL_APP,
    LABEL_COMPONENT,
    LABEL_DIGEST,
    LABEL_FINGERPRINT,
    LABEL_PROBE,
    LABEL_ROLE,
    LABEL_STICKER,
)
from stella_operators.targets.runtime import RUN_ONCE_ROLES

log = logging.getLogger(__name__)


@dataclass
class DockerObservation:
    """Recorded Engine API answers for one app (what `gather` read)."""

    containers: list[dict[str, Any]]                                     # GET /containers/json?all=1
    inspected: dict[str, dict[str, Any]] = field(default_factory=dict)   # container id -> inspect
    images: dict[str, dict[str, Any]] = field(default_factory=dict)      # image id -> inspect (absent: removed)


def norm_repo(repo: str) -> str:
    """Docker's short form of a repository name (docker.io/library/x -> x)."""
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            if repo.startswith("library/") and repo.count("/") == 1:
                repo = repo[len("library/"):]
            break
    return repo


def split_repo_digest(ref: str) -> tuple[str, str]:
    repo, _, digest = ref.partition("@")
    return norm_repo(repo), digest


def image_digest(image: dict[str, Any] | None, repository: str | None, hint: str | None) -> str | None:
    """The repo digest of an image, read from the image itself (RepoDigests). With several digests
    (the same content pushed to several places) `hint` picks among them; without a repository or
    hint to decide, None (a digest we cannot trust)."""
    if image is None:
        return None
    pairs = [split_repo_digest(r) for r in image.get("RepoDigests") or []]
    if repository is not None:
        repo = norm_repo(repository)
        same_repo = [d for r, d in pairs if r == repo]
        if hint and hint in same_repo:
            return hint
        if len(set(same_repo)) == 1:
            return same_repo[0]
        return None
    digests = {d for _, d in pairs}
    if hint and hint in digests:
        return hint
    return digests.pop() if len(digests) == 1 else None


def running_component(info: dict[str, Any], image: dict[str, Any] | None) -> RunningComponent:
    """One inspected container (+ its image) as a RunningComponent."""
    labels = info["Config"].get("Labels") or {}
    config_image = info["Config"].get("Image") or ""
    repository = config_image.partition("@")[0] if "@" in config_image else None
    digest = image_digest(image, repository, labels.get(LABEL_DIGEST))
    state = info.get("State") or {}
    health = state.get("Health")
    if labels.get(LABEL_ROLE) in RUN_ONCE_ROLES and not state.get("Running"):
        healthy = state.get("Status") == "exited" and state.get("ExitCode") == 0
    elif health:
        healthy = health.get("Status") == "healthy"
    else:
        healthy = bool(state.get("Running"))
    return RunningComponent(component=labels.get(LABEL_COMPONENT, ""), digest=digest, workload_id=info["Id"],
                            workload_name=info["Name"].lstrip("/"), healthy=healthy, labels=labels,
                            fingerprint=labels.get(LABEL_FINGERPRINT))


def counts(summary: dict[str, Any], info: dict[str, Any] | None = None) -> bool:
    """Does this container stand for its component? (running, or a run-once that completed)"""
    labels = summary.get("Labels") or {}
    if not labels.get(LABEL_COMPONENT) or labels.get(LABEL_PROBE):
        return False
    if summary.get("State") == "running":
        return True
    if labels.get(LABEL_ROLE) in RUN_ONCE_ROLES and summary.get("State") == "exited":
        if info is None:
            return True  # decided on the inspected state
        state = info.get("State") or {}
        return state.get("Status") == "exited" and state.get("ExitCode") == 0
    return False


def parse_facts(target: str, app: str, obs: DockerObservation) -> TargetFacts:
    candidates = [c for c in obs.containers
                  if (c.get("Labels") or {}).get(LABEL_APP) == app and counts(c) and c["Id"] in obs.inspected]
    candidates.sort(key=lambda c: c.get("Created", 0))  # newest last wins below
    components: dict[str, RunningComponent] = {}
    sticker: VersionSticker | None = None
    sticker_at = -1
    for summary in candidates:
        info = obs.inspected[summary["Id"]]
        if not counts(summary, info):
            continue  # a run-once container that failed: it stands for nothing
        rc = running_component(info, obs.images.get(info.get("Image", "")))
        components[rc.component] = rc
        raw = rc.labels.get(LABEL_STICKER)
        # The sticker of the newest running workload; a completed run-once only when none runs.
        rank = 1 if summary.get("State") == "running" else 0
        if raw and rank >= sticker_at:
            try:
                sticker = VersionSticker.model_validate_json(raw)
                sticker_at = rank
            except ValueError:
                log.warning("%s: container %s carries an unreadable sticker label", target, rc.workload_name)
    return TargetFacts(target=target, app=app, components=components, sticker=sticker)


def list_containers(api: Any, app: str, component: str | None = None) -> list[dict[str, Any]]:
    labels = [f"{LABEL_APP}={app}"]
    if component is not None:
        labels.append(f"{LABEL_COMPONENT}={component}")
    containers: list[dict[str, Any]] = api.containers(all=True, filters={"label": labels})
    return containers


def gather(api: Any, app: str) -> DockerObservation:
    """Read what parse_facts needs from the engine (a container removed meanwhile is skipped)."""
    obs = DockerObservation(containers=list_containers(api, app))
    for summary in obs.containers:
        if not counts(summary):
            continue
        try:
            info = api.inspect_container(summary["Id"])
        except docker_errors.NotFound:
            continue
        obs.inspected[summary["Id"]] = info
        image_id = info.get("Image", "")
        if image_id and image_id not in obs.images:
            try:
                obs.images[image_id] = api.inspect_image(image_id)
            except docker_errors.NotFound:
                pass
    return obs


def inspect_component(api: Any, summary: dict[str, Any]) -> RunningComponent:
    """One container (from a list) as a RunningComponent, read now (restore uses it)."""
    info = api.inspect_container(summary["Id"])
    try:
        image = api.inspect_image(info["Image"])
    except docker_errors.NotFound:
        image = None
    return running_component(info, image)
