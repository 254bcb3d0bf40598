"""`docker` target: one Docker Engine reached through the Engine API (docker SDK, no Airflow here).

prepare  - per component: pull `repository@sha256:...`, verify the image carries that repo digest,
           create the new container beside the old one (labels + /stella.version.json = sticker),
           start it and wait until it is healthy. Old containers are only recorded.
commit   - stop the old containers, keep them (a rollback after the switch starts them again).
discard  - force-remove the containers prepare started; old ones were never touched.
restore, finalize - from the engine's own state, see docker_restore.py.

Containers are named `stella-<app>-<component>-<digest hex[:12]>` and labelled with
`sticker_labels(sticker)` plus `stella.component` and `stella.digest`. Facts never trust the
`stella.digest` label: the digest comes from the image's RepoDigests (image id of the container).

Env values may be secrets: they are passed to the engine and never logged or put in errors.
"""

from __future__ import annotations

import io
import logging
import tarfile
import threading
import time
from typing import Any

import docker
from docker import errors as docker_errors
from stella_operators.targets.contract import (
    ComponentSpec,
    DeployError,
    HealthCheck,
    PreparedChange,
    RunningComponent,
    TargetFacts,
    TargetPlan,
    VersionSticker,
    sticker_labels,
)
from stella_operators.targets.docker.restore import DockerRestore

log = logging.getLogger(__name__)

STICKER_PATH = "/stella.version.json"
LABEL_APP = "stella.app"
LABEL_COMPONENT = "stella.component"
LABEL_DIGEST = "stella.digest"
LABEL_STICKER = "stella.version.json"
_NS = 1_000_000_000


def container_name(app: str, component: str, digest: str) -> str:
    return f"stella-{app}-{component}-{digest.split(':', 1)[-1][:12]}"


def docker_healthcheck(hc: HealthCheck) -> dict[str, Any]:
    """HealthCheck -> the Engine API `Healthcheck` (durations in nanoseconds)."""
    test = list(hc.command)
    if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        test = ["CMD", *test]
    return {
        "test": test,
        "interval": int(hc.interval_s * _NS),
        "timeout": int(hc.timeout_s * _NS),
        "retries": int(hc.retries),
        "start_period": int(hc.start_period_s * _NS),
    }


def _norm_repo(repo: str) -> str:
    """Docker's short form of a repository name (docker.io/library/x -> x)."""
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if repo.startswith(prefix):
            repo = repo[len(prefix):]
            if repo.startswith("library/") and repo.count("/") == 1:
                repo = repo[len("library/"):]
            break
    return repo


def _split_repo_digest(ref: str) -> tuple[str, str]:
    repo, _, digest = ref.partition("@")
    return _norm_repo(repo), digest


def _sticker_tar(sticker: VersionSticker) -> bytes:
    data = (sticker.model_dump_json(indent=2) + "\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(STICKER_PATH.lstrip("/"))
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _redact(text: str, secrets: list[str]) -> str:
    """Hide env values (they may be secrets) in text that came from the engine or the workload."""
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


def _api_error_text(exc: Exception) -> str:
    if isinstance(exc, docker_errors.APIError):
        return str(exc.explanation or exc)
    return f"{type(exc).__name__}: {exc}"


class DockerTarget(DockerRestore):
    """A Docker Engine host. `client` is a ready `docker.APIClient` (a `DockerClient` works too)."""

    kind = "docker"

    def __init__(self, name: str, client: docker.APIClient | docker.DockerClient, *, pull_timeout_s: float = 120,
                 stop_timeout_s: int = 10, poll_interval_s: float = 0.2):
        self.name = name
        self.api: docker.APIClient = client.api if isinstance(client, docker.DockerClient) else client
        self.pull_timeout_s = pull_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_interval_s = poll_interval_s
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Make a prepare in flight stop at its next step or poll (see contract.Cancellable)."""
        self._cancelled.set()

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise DeployError(self.name, "cancelled: the deployment was interrupted")

    def __repr__(self) -> str:
        return f"DockerTarget({self.name!r}, {self.api.base_url!r})"

    @property
    def address(self) -> str:
        """Where the engine is reached (for messages that must name the host and its address)."""
        return str(self.api.base_url)

    # facts --------------------------------------------------------------------------------
    def _containers(self, app: str, component: str | None = None) -> list[dict[str, Any]]:
        labels = [f"{LABEL_APP}={app}"]
        if component is not None:
            labels.append(f"{LABEL_COMPONENT}={component}")
        containers: list[dict[str, Any]] = self.api.containers(all=True, filters={"label": labels})
        return containers

    def _image_digest(self, image_id: str, repository: str | None, hint: str | None) -> str | None:
        """The repo digest of an image, read from the image itself (RepoDigests), never from a label."""
        try:
            image = self.api.inspect_image(image_id)
        except docker_errors.NotFound:
            return None
        pairs = [_split_repo_digest(r) for r in image.get("RepoDigests") or []]
        if repository is not None:
            repo = _norm_repo(repository)
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

    def _running_component(self, summary: dict[str, Any]) -> RunningComponent:
        info = self.api.inspect_container(summary["Id"])
        labels = info["Config"].get("Labels") or {}
        config_image = info["Config"].get("Image") or ""
        repository = config_image.partition("@")[0] if "@" in config_image else None
        digest = self._image_digest(info["Image"], repository, labels.get(LABEL_DIGEST))
        state = info.get("State") or {}
        health = state.get("Health")
        healthy = (health.get("Status") == "healthy") if health else bool(state.get("Running"))
        return RunningComponent(component=labels.get(LABEL_COMPONENT, ""), digest=digest, workload_id=info["Id"],
                                workload_name=info["Name"].lstrip("/"), healthy=healthy, labels=labels)

    def facts(self, app: str) -> TargetFacts:
        running = [c for c in self._containers(app) if c.get("State") == "running"]
        running.sort(key=lambda c: c.get("Created", 0))  # newest last wins below
        components: dict[str, RunningComponent] = {}
        sticker: VersionSticker | None = None
        for summary in running:
            comp = (summary.get("Labels") or {}).get(LABEL_COMPONENT)
            if not comp:
                continue
            try:
                rc = self._running_component(summary)
            except docker_errors.NotFound:
                continue  # removed between list and inspect
            components[comp] = rc
            raw = rc.labels.get(LABEL_STICKER)
            if raw:
                try:
                    sticker = VersionSticker.model_validate_json(raw)
                except ValueError:
                    log.warning("%s: container %s carries an unreadable sticker label", self.name, rc.workload_name)
        return TargetFacts(target=self.name, app=app, components=components, sticker=sticker)

    def read_sticker_file(self, container_id: str) -> VersionSticker:
        """The sticker file written into a container (what `docker cp c:/stella.version.json -` shows)."""
        stream, _ = self.api.get_archive(container_id, STICKER_PATH)
        buf = io.BytesIO(b"".join(stream))
        with tarfile.open(fileobj=buf) as tar:
            member = tar.getmembers()[0]
            content = tar.extractfile(member)
            if content is None:
                raise ValueError(f"{STICKER_PATH} in container {container_id} is not a regular file")
            return VersionSticker.model_validate_json(content.read())

    # prepare ------------------------------------------------------------------------------
    def prepare(self, plan: TargetPlan) -> PreparedChange:
        prepared = PreparedChange(target=self.name)
        # Env values may be secrets: never let one through into an error or a log line, even when
        # the workload prints it (log tail) or the engine echoes it.
        secrets = [v for spec in plan.components for v in spec.env.values() if len(v) >= 4]
        try:
            for spec in plan.components:
                self._prepare_component(plan, spec, prepared)
        except DeployError as exc:
            message = _redact(str(exc).removeprefix(f"{self.name}: "), secrets)
            raise DeployError(self.name, message, prepared=prepared) from None
        except Exception as exc:  # noqa: BLE001 - every failure must carry `prepared` for discard
            message = _redact(f"prepare failed: {_api_error_text(exc)}", secrets)
            raise DeployError(self.name, message, prepared=prepared) from None
        totals: dict[str, int] = {}
        for key, value in prepared.timings_ms.items():
            phase = key.rsplit(".", 1)[-1]
            totals[phase] = totals.get(phase, 0) + value
        prepared.timings_ms.update(totals)
        return prepared

    def _note(self, prepared: PreparedChange, message: str) -> None:
        prepared.log.append(message)
        log.info("%s: %s", self.name, message)

    def _prepare_component(self, plan: TargetPlan, spec: ComponentSpec, prepared: PreparedChange) -> None:
        self._check_cancelled()
        comp = spec.component
        existing = self._containers(plan.app, comp.name)
        current = None
        for summary in existing:
            if summary.get("State") != "running":
                continue
            rc = self._running_component(summary)
            if rc.digest == comp.digest and rc.healthy:
                current = rc
                break
        if current is not None:
            prepared.unchanged.append(comp.name)
            others = [c["Id"] for c in existing if c["Id"] != current.workload_id]
            if others:
                prepared.to_retire[comp.name] = others
            self._note(prepared, f"{comp.name}: already running {comp.digest} in {current.workload_name} (healthy)")
            return

        ref = comp.ref
        # 1. pull by digest, verify the image carries exactly that repo digest
        t0 = time.monotonic()
        self._pull(comp.repository, comp.digest)
        image = self.api.inspect_image(ref)
        repo_digests = {_split_repo_digest(r) for r in image.get("RepoDigests") or []}
        if (_norm_repo(comp.repository), comp.digest) not in repo_digests:
            raise DeployError(self.name, f"{comp.name}: pulled digest differs: asked for {ref}, image "
                                         f"{image['Id']} has {sorted(image.get('RepoDigests') or [])}")
        prepared.timings_ms[f"{comp.name}.pull"] = _ms(t0)
        self._note(prepared, f"{comp.name}: pulled {ref} (image {image['Id'][:19]}) "
                             f"in {prepared.timings_ms[f'{comp.name}.pull']} ms")

        # 2. create beside the old container, write the sticker, start
        t0 = time.monotonic()
        labels = {k: str(v) for k, v in sticker_labels(plan.sticker).items()}
        labels[LABEL_COMPONENT] = comp.name
        labels[LABEL_DIGEST] = comp.digest
        health = docker_healthcheck(spec.health) if spec.health else None
        # No restart policy until healthy: a crash must leave the container exited with its exit
        # code, not restarted. The policy (unless-stopped) is set once the container is healthy.
        host_config = self.api.create_host_config(restart_policy={"Name": "no"})
        taken = {n.lstrip("/") for c in existing for n in c.get("Names") or []}
        name = container_name(plan.app, comp.name, comp.digest)
        if name in taken:  # an old (stopped or unhealthy) container of the same digest: never touch it
            suffix = 2
            while f"{name}-{suffix}" in taken:
                suffix += 1
            name = f"{name}-{suffix}"
        created = self.api.create_container(image=ref, name=name, command=spec.command, environment=dict(spec.env),
                                            labels=labels, healthcheck=health, host_config=host_config, detach=True)
        cid = created["Id"]
        prepared.started[comp.name] = cid
        self._check_cancelled()
        self.api.put_archive(cid, "/", _sticker_tar(plan.sticker))
        self.api.start(cid)
        prepared.timings_ms[f"{comp.name}.start"] = _ms(t0)
        self._note(prepared, f"{comp.name}: started {name} ({cid[:12]}) "
                             f"in {prepared.timings_ms[f'{comp.name}.start']} ms"
                             + (f" with {len(spec.env)} env var(s)" if spec.env else ""))

        # 3. health
        t0 = time.monotonic()
        self._wait_healthy(comp.name, name, cid, t0 + plan.health_timeout_s, plan.health_timeout_s)
        # The engine accepts unless-stopped; the docker stubs list only always and on-failure.
        self.api.update_container(cid, restart_policy={"Name": "unless-stopped"})  # type: ignore[arg-type]
        prepared.timings_ms[f"{comp.name}.health"] = _ms(t0)
        self._note(prepared, f"{comp.name}: {name} healthy after {prepared.timings_ms[f'{comp.name}.health']} ms")

        old = [c["Id"] for c in existing]
        if old:
            prepared.to_retire[comp.name] = old
            self._note(prepared, f"{comp.name}: {len(old)} old container(s) to retire on commit")

    def _pull(self, repository: str, digest: str) -> None:
        deadline = time.monotonic() + self.pull_timeout_s
        try:
            for event in self.api.pull(repository, tag=digest, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    detail = event.get("errorDetail", {}).get("message") or event["error"]
                    raise DeployError(self.name, f"pull {repository}@{digest} failed: {detail}")
                if time.monotonic() > deadline:
                    raise DeployError(self.name,
                                      f"pull {repository}@{digest} timed out after {self.pull_timeout_s:.0f} s")
                self._check_cancelled()
        except docker_errors.APIError as exc:
            raise DeployError(self.name, f"pull {repository}@{digest} failed: {_api_error_text(exc)}") from exc

    def _wait_healthy(self, component: str, name: str, cid: str, deadline: float, timeout_s: float) -> None:
        started = time.monotonic()
        while True:
            self._check_cancelled()
            info = self.api.inspect_container(cid)
            state = info.get("State") or {}
            health = state.get("Health")
            if state.get("Status") in ("exited", "dead") or state.get("Restarting") or info.get("RestartCount", 0) > 0 \
                    or (not state.get("Running") and state.get("Status") != "created"):
                raise DeployError(self.name, f"{component}: container {name} exited with code {state.get('ExitCode')}"
                                             f"{': ' + state['Error'] if state.get('Error') else ''}"
                                             f"{self._log_tail(cid)}")
            if health:
                status = health.get("Status")
                if status == "healthy":
                    return
                if status == "unhealthy":
                    raise DeployError(self.name, f"{component}: container {name} is unhealthy"
                                                 f"{self._health_tail(health)}")
            elif state.get("Running") and time.monotonic() - started >= 1.0:
                return  # no health check: running for a second without a restart
            if time.monotonic() > deadline:
                what = f"health status {health.get('Status')!r}" if health else f"state {state.get('Status')!r}"
                raise DeployError(self.name, f"{component}: container {name} not healthy within {timeout_s:.0f} s "
                                             f"({what}){self._health_tail(health) if health else ''}")
            time.sleep(self.poll_interval_s)

    @staticmethod
    def _health_tail(health: dict[str, Any], lines: int = 3) -> str:
        entries = (health.get("Log") or [])[-lines:]
        if not entries:
            return ""
        parts = [f"exit {e.get('ExitCode')}: {(e.get('Output') or '').strip()[:200]}" for e in entries]
        return "; last health checks: " + " | ".join(parts)

    def _log_tail(self, cid: str, lines: int = 5) -> str:
        try:
            out = self.api.logs(cid, tail=lines).decode(errors="replace").strip()
        except docker_errors.APIError:
            return ""
        return f"; last output: {out[-500:]}" if out else ""

    # commit / discard ---------------------------------------------------------------------
    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        errors: list[str] = []
        for component, ids in prepared.to_retire.items():
            for cid in ids:
                try:
                    self.api.stop(cid, timeout=self.stop_timeout_s)
                    prepared.log.append(f"{component}: stopped {cid[:12]} (kept until the deployment is verified)")
                    log.info("%s: %s: stopped %s", self.name, component, cid[:12])
                except docker_errors.NotFound:
                    continue
                except docker_errors.APIError as exc:
                    errors.append(f"{component}: cannot stop {cid[:12]}: {_api_error_text(exc)}")
        if errors:
            raise DeployError(self.name, "commit failed: " + "; ".join(errors), prepared=prepared)

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        errors: list[str] = []
        for component, cid in prepared.started.items():
            try:
                self.api.remove_container(cid, force=True)
                prepared.log.append(f"{component}: discarded {cid[:12]}")
                log.info("%s: %s: discarded %s", self.name, component, cid[:12])
            except docker_errors.NotFound:
                continue
            except docker_errors.APIError as exc:
                errors.append(f"{component}: cannot remove {cid[:12]}: {_api_error_text(exc)}")
        if errors:
            raise DeployError(self.name, "discard failed: " + "; ".join(errors), prepared=prepared)
