"""The engine calls a `docker` target is made of: pull by digest, ensure networks, create, start,
wait until healthy (or, for a run-once component, until it exits 0). A mixin of DockerTarget,
which provides `api`, `name`, `pull_timeout_s`, `poll_interval_s` and `_check_cancelled`.

Env values may be secrets: nothing here logs them, and errors carry workload output only after
the caller redacted it (target.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from docker import errors as docker_errors
from stella_operators.targets.contract import ComponentSpec, DeployError, VersionSticker
from stella_operators.targets.docker.facts import norm_repo, split_repo_digest
from stella_operators.targets.docker.spec import (
    LABEL_MANAGED_NETWORK,
    create_kwargs,
    endpoint,
    extra_networks,
    sticker_tar,
)

log = logging.getLogger(__name__)


def api_error_text(exc: Exception) -> str:
    if isinstance(exc, docker_errors.APIError):
        return str(exc.explanation or exc)
    return f"{type(exc).__name__}: {exc}"


class DockerActions:
    api: Any
    name: str
    pull_timeout_s: float
    poll_interval_s: float

    def _check_cancelled(self) -> None:
        raise NotImplementedError

    def pull_verified(self, spec: ComponentSpec) -> str:
        """Pull `repository@digest` and check the image carries exactly that repo digest; image id."""
        comp = spec.component
        deadline = time.monotonic() + self.pull_timeout_s
        try:
            for event in self.api.pull(comp.repository, tag=comp.digest, stream=True, decode=True):
                if isinstance(event, dict) and event.get("error"):
                    detail = event.get("errorDetail", {}).get("message") or event["error"]
                    raise DeployError(self.name, f"pull {comp.ref} failed: {detail}")
                if time.monotonic() > deadline:
                    raise DeployError(self.name, f"pull {comp.ref} timed out after {self.pull_timeout_s:.0f} s")
                self._check_cancelled()
        except docker_errors.APIError as exc:
            raise DeployError(self.name, f"pull {comp.ref} failed: {api_error_text(exc)}") from exc
        image = self.api.inspect_image(comp.ref)
        repo_digests = {split_repo_digest(r) for r in image.get("RepoDigests") or []}
        if (norm_repo(comp.repository), comp.digest) not in repo_digests:
            raise DeployError(self.name, f"{comp.name}: pulled digest differs: asked for {comp.ref}, image "
                                         f"{image['Id']} has {sorted(image.get('RepoDigests') or [])}")
        return str(image["Id"])

    def ensure_networks(self, spec: ComponentSpec) -> list[str]:
        """Create the user-defined bridge networks the component joins that do not exist yet;
        returns those created (an existing network of that name is used as it is)."""
        created = []
        for net in spec.networks:
            found = [n for n in self.api.networks(names=[net]) if n.get("Name") == net]
            if found:
                continue
            try:
                self.api.create_network(net, driver="bridge", labels={LABEL_MANAGED_NETWORK: "true"},
                                        check_duplicate=True)
                created.append(net)
            except docker_errors.APIError as exc:
                if "already exists" not in api_error_text(exc):  # created meanwhile by a parallel deploy
                    raise DeployError(self.name, f"{spec.component.name}: cannot create network {net}: "
                                                 f"{api_error_text(exc)}") from exc
        return created

    def create(self, spec: ComponentSpec, sticker: VersionSticker, *, name: str, env: dict[str, str],
               probe: bool = False) -> str:
        """Create the container (not started), join its other networks, write the sticker file."""
        created = self.api.create_container(**create_kwargs(spec, sticker, name=name, env=env, probe=probe))
        cid = str(created["Id"])
        try:
            for net in extra_networks(spec):
                aliases = endpoint(spec, net, probe=probe).get("Aliases")
                self.api.connect_container_to_network(cid, net, aliases=aliases or None)
            self.api.put_archive(cid, "/", sticker_tar(sticker))
        except BaseException:
            self._remove_quietly(cid)
            raise
        return cid

    def _remove_quietly(self, cid: str) -> None:
        try:
            self.api.remove_container(cid, force=True)
        except docker_errors.APIError:
            log.warning("%s: could not remove %s", self.name, cid[:12])

    def wait_healthy(self, component: str, name: str, cid: str, deadline: float, timeout_s: float) -> None:
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
                                             f"{self.log_tail(cid)}")
            if health:
                status = health.get("Status")
                if status == "healthy":
                    return
                if status == "unhealthy":
                    raise DeployError(self.name, f"{component}: container {name} is unhealthy"
                                                 f"{_health_tail(health)}")
            elif state.get("Running") and time.monotonic() - started >= 1.0:
                return  # no health check: running for a second without a restart
            if time.monotonic() > deadline:
                what = f"health status {health.get('Status')!r}" if health else f"state {state.get('Status')!r}"
                raise DeployError(self.name, f"{component}: container {name} not healthy within {timeout_s:.0f} s "
                                             f"({what}){_health_tail(health) if health else ''}")
            time.sleep(self.poll_interval_s)

    def wait_completed(self, spec: ComponentSpec, name: str, cid: str, timeout_s: float) -> None:
        """A run-once component (init, migration) must exit 0 within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        role = spec.role
        while True:
            self._check_cancelled()
            state = self.api.inspect_container(cid).get("State") or {}
            if state.get("Status") in ("exited", "dead"):
                code = state.get("ExitCode")
                if code == 0:
                    return
                raise DeployError(self.name, f"{spec.component.name}: {role} container {name} exited with code "
                                             f"{code}, the deployment stops here{self.log_tail(cid, lines=10)}")
            if time.monotonic() > deadline:
                raise DeployError(self.name, f"{spec.component.name}: {role} container {name} did not finish "
                                             f"within {timeout_s:.0f} s{self.log_tail(cid, lines=10)}")
            time.sleep(self.poll_interval_s)

    def log_tail(self, cid: str, lines: int = 5) -> str:
        try:
            out = self.api.logs(cid, tail=lines).decode(errors="replace").strip()
        except docker_errors.APIError:
            return ""
        return f"; last output: {out[-800:]}" if out else ""


def _health_tail(health: dict[str, Any], lines: int = 3) -> str:
    entries = (health.get("Log") or [])[-lines:]
    if not entries:
        return ""
    parts = [f"exit {e.get('ExitCode')}: {(e.get('Output') or '').strip()[:200]}" for e in entries]
    return "; last health checks: " + " | ".join(parts)
