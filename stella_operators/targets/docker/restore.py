"""`docker` target, undoing and settling a deployment from the engine's own state (labels and
image digests), so that a process that never saw the deployment start can finish it:

restore  - remove the containers of the deployment, start again the newest stopped container that
           runs each previous digest. Chosen over re-creating containers from the previous digests:
           the kept container has the exact previous config, env and sticker, and starting it
           needs no registry.
           A run-once component (init, migration) is never run again: its completed container
           of the previous digest is what it was.
park     - stop the app's running containers and keep them (A/B: group A's share); restore
           starts them again.
finalize - after verification: remove the stopped containers of the app that are neither the
           deployment's nor current facts (a completed migration of an earlier release that this
           one kept stays, so that the next re-run leaves it alone).

A mixin of DockerTarget (target.py), which provides `api`, `name`, `address`, `facts`,
`_containers` and `wait_healthy`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from docker import errors as docker_errors
from stella_operators.targets.contract import DeployError, TargetFacts, TargetPlan
from stella_operators.targets.docker.actions import api_error_text as _api_error_text
from stella_operators.targets.docker.facts import inspect_component
from stella_operators.targets.docker.spec import LABEL_COMPONENT, LABEL_DEPLOYMENT, LABEL_ROLE
from stella_operators.targets.runtime import RUN_ONCE_ROLES

log = logging.getLogger(__name__)


class DockerRestore:
    api: Any
    name: str
    stop_timeout_s: int

    if TYPE_CHECKING:  # provided by DockerTarget
        @property
        def address(self) -> str: ...

        def _containers(self, app: str, component: str | None = None) -> list[dict[str, Any]]: ...
        def facts(self, app: str) -> TargetFacts: ...
        def wait_healthy(self, component: str, name: str, cid: str, deadline: float, timeout_s: float) -> None: ...

    def _where(self) -> str:
        return f"{self.name} ({self.address})"

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        errors: list[str] = []
        try:
            containers = self._containers(plan.app)
        except Exception as exc:  # noqa: BLE001 - the caller reports which host could not be restored
            raise DeployError(self._where(), f"cannot list containers: {_api_error_text(exc)}") from None
        kept = []
        for c in containers:
            if (c.get("Labels") or {}).get(LABEL_DEPLOYMENT) == plan.deployment_id:
                try:
                    self.api.remove_container(c["Id"], force=True)
                    log.info("%s: removed %s of deployment %s", self.name, c["Id"][:12], plan.deployment_id)
                except docker_errors.NotFound:
                    pass
                except docker_errors.APIError as exc:
                    errors.append(f"cannot remove {c['Id'][:12]}: {_api_error_text(exc)}")
            else:
                kept.append(c)
        for component, digest in sorted(previous.items()):
            if digest is None:
                continue
            try:
                self._bring_back(plan, component, digest, kept)
            except DeployError as exc:
                errors.append(str(exc).removeprefix(f"{self.name}: "))
            except Exception as exc:  # noqa: BLE001
                errors.append(f"{component}: {_api_error_text(exc)}")
        if errors:
            raise DeployError(self._where(), "restore failed: " + "; ".join(errors))

    def _bring_back(self, plan: TargetPlan, component: str, digest: str, containers: list[dict[str, Any]]) -> None:
        mine = [c for c in containers if (c.get("Labels") or {}).get(LABEL_COMPONENT) == component]
        mine.sort(key=lambda c: c.get("Created", 0), reverse=True)
        stopped = []
        for summary in mine:
            try:
                rc = inspect_component(self.api, summary)
            except docker_errors.NotFound:
                continue
            if rc.digest != digest:
                continue
            if summary.get("State") == "running":
                return  # still (or again) running the previous digest
            if rc.labels.get(LABEL_ROLE) in RUN_ONCE_ROLES:
                if rc.healthy:
                    return  # it ran to completion at that digest; running it again is not a restore
                continue
            stopped.append(rc)
        if not stopped:
            raise DeployError(self.name, f"{component}: no container running or kept with {digest}")
        rc = stopped[0]
        self.api.start(rc.workload_id)
        t0 = time.monotonic()
        self.wait_healthy(component, rc.workload_name, rc.workload_id, t0 + plan.health_timeout_s,
                           plan.health_timeout_s)
        log.info("%s: %s: restored %s (%s)", self.name, component, rc.workload_name, digest)

    def park(self, plan: TargetPlan) -> None:
        """Stop every running container of the app and keep it (contract.Parkable): `restore` with
        the digests it ran starts it again. A completed init / migration is not running: untouched."""
        errors: list[str] = []
        try:
            containers = self._containers(plan.app)
        except Exception as exc:  # noqa: BLE001 - the caller names the host
            raise DeployError(self._where(), f"cannot list containers: {_api_error_text(exc)}") from None
        for c in containers:
            if c.get("State") != "running":
                continue
            try:
                self.api.stop(c["Id"], timeout=self.stop_timeout_s)
                log.info("%s: %s: stopped %s (parked)", self.name,
                         (c.get("Labels") or {}).get(LABEL_COMPONENT, "?"), c["Id"][:12])
            except docker_errors.NotFound:
                continue
            except docker_errors.APIError as exc:
                errors.append(f"cannot stop {c['Id'][:12]}: {_api_error_text(exc)}")
        if errors:
            raise DeployError(self._where(), "park failed: " + "; ".join(errors))

    def finalize(self, plan: TargetPlan) -> None:
        errors: list[str] = []
        current = {rc.workload_id for rc in self.facts(plan.app).components.values()}
        for c in self._containers(plan.app):
            labels = c.get("Labels") or {}
            if c.get("State") == "running" or labels.get(LABEL_DEPLOYMENT) == plan.deployment_id \
                    or c["Id"] in current:
                continue
            try:
                self.api.remove_container(c["Id"], force=True)
                log.info("%s: %s: retired %s", self.name, labels.get(LABEL_COMPONENT, "?"), c["Id"][:12])
            except docker_errors.NotFound:
                continue
            except docker_errors.APIError as exc:
                errors.append(f"cannot remove {c['Id'][:12]}: {_api_error_text(exc)}")
        if errors:
            raise DeployError(self._where(), "finalize failed: " + "; ".join(errors))
