"""`docker` target: one Docker Engine reached through the Engine API (docker SDK, no Airflow here).

facts    - facts.py: the app's containers, digests from the images, the sticker (pure parser).
prepare  - `diff(facts, plan)` decides: components at `keep` are left alone (a re-run restarts
           nothing). The others, run-once roles (init, migration) first, in plan order:
           pull `repository@sha256:...`, verify the image carries that repo digest, then
             init / migration: run to completion; exit 0 required, else the deployment stops
                               (nothing is switched) with the last log lines in the error;
             no published port: start the new container beside the old one, wait until healthy;
             published ports:   a host port cannot be bound twice, so a *probe* (the same
                               container without published ports or network aliases) is started
                               beside the old one and health checked, and the real container is
                               created but not started (`switch_at_commit`).
           Old containers are only recorded.
commit   - stop the old containers, keep them (a rollback after the switch starts them again);
           then, for published ports: remove the probe, start the real container (the port is
           free now), wait until healthy. A failure raises: the engine restores every switched
           host (remove this deployment's containers, start the kept old ones).
discard  - force-remove the containers prepare created; old ones were never touched.
restore, finalize - from the engine's own state, see restore.py.

Containers are named `stella-<app>-<component>-<digest hex[:12]>` and labelled with
`sticker_labels(sticker)` plus `stella.component`, `stella.digest` and `stella.role`.
Named volumes outlive containers (never removed here); networks are created when missing.
Env values (from `env` and the resolved `env_from`) may be secrets: they reach the container's
environment only, and are redacted from every error and log line.
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
    PreparedChange,
    TargetFacts,
    TargetPlan,
    VersionSticker,
)
from stella_operators.targets.diff import ComponentChange, diff
from stella_operators.targets.docker.actions import DockerActions, api_error_text
from stella_operators.targets.docker.facts import gather, list_containers, parse_facts
from stella_operators.targets.docker.restore import DockerRestore
from stella_operators.targets.docker.spec import STICKER_PATH, container_name, free_name, restart_policy
from stella_operators.targets.runtime import EnvResolver

__all__ = ["STICKER_PATH", "DockerTarget", "container_name"]

log = logging.getLogger(__name__)


def _redact(text: str, secrets: list[str]) -> str:
    """Hide env values (they may be secrets) in text that came from the engine or the workload."""
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


class DockerTarget(DockerRestore, DockerActions):
    """A Docker Engine host. `client` is a ready `docker.APIClient` (a `DockerClient` works too).

    `resolve_env` reads `env_from` references at deploy time (the Airflow layer passes one that
    reads Connections and Variables, hooks/env_from.py); without it, `env_from` is refused."""

    kind = "docker"

    def __init__(self, name: str, client: docker.APIClient | docker.DockerClient, *, pull_timeout_s: float = 120,
                 stop_timeout_s: int = 10, poll_interval_s: float = 0.2, resolve_env: EnvResolver | None = None):
        self.name = name
        self.api: docker.APIClient = client.api if isinstance(client, docker.DockerClient) else client
        self.pull_timeout_s = pull_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.poll_interval_s = poll_interval_s
        self.resolve_env = resolve_env
        self._cancelled = threading.Event()
        self._secrets: list[str] = []

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
    def facts(self, app: str) -> TargetFacts:
        return parse_facts(self.name, app, gather(self.api, app))

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
        # Never let an env value through into an error or a log line, even when the workload
        # prints it (log tail) or the engine echoes it. Resolved env_from values join on the way.
        self._secrets = [v for spec in plan.components for v in spec.env.values() if len(v) >= 4]
        try:
            facts = self.facts(plan.app)
            changes = diff(facts, plan)
            # init / migration run to completion before anything else starts
            ordered = [s for s in plan.components if s.run_once] + [s for s in plan.components if not s.run_once]
            for spec in ordered:
                self._prepare_component(plan, spec, changes.change(spec.component.name), facts, prepared)
        except DeployError as exc:
            message = _redact(str(exc).removeprefix(f"{self.name}: "), self._secrets)
            raise DeployError(self.name, message, prepared=prepared) from None
        except Exception as exc:  # noqa: BLE001 - every failure must carry `prepared` for discard
            message = _redact(f"prepare failed: {api_error_text(exc)}", self._secrets)
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

    def _env(self, spec: ComponentSpec) -> dict[str, str]:
        env = dict(spec.env)
        if spec.env_from and self.resolve_env is None:
            raise DeployError(self.name, f"{spec.component.name}: env_from needs a resolver of Airflow "
                                         f"Connections/Variables (build the target through its target type)")
        for key, ref in spec.env_from.items():
            assert self.resolve_env is not None
            try:
                value = self.resolve_env(ref)
            except Exception as exc:  # noqa: BLE001 - reported with the reference, never a value
                raise DeployError(self.name, f"{spec.component.name}: env {key}: cannot read {ref.describe()}: "
                                             f"{type(exc).__name__}: {exc}") from None
            if len(value) >= 4:
                self._secrets.append(value)
            env[key] = value
        return env

    def _prepare_component(self, plan: TargetPlan, spec: ComponentSpec, change: ComponentChange,
                           facts: TargetFacts, prepared: PreparedChange) -> None:
        self._check_cancelled()
        comp = spec.component
        existing = list_containers(self.api, plan.app, comp.name)
        if change.action == "keep":
            current = facts.components[comp.name]
            prepared.unchanged.append(comp.name)
            others = [c["Id"] for c in existing if c["Id"] != current.workload_id]
            if others:
                prepared.to_retire[comp.name] = others
            done = "completed" if spec.run_once else "healthy"
            self._note(prepared, f"{comp.name}: already at {comp.digest} in {current.workload_name} ({done}), "
                                 f"left alone")
            return

        # 1. pull by digest, verify the image carries exactly that repo digest
        t0 = time.monotonic()
        image_id = self.pull_verified(spec)
        prepared.timings_ms[f"{comp.name}.pull"] = _ms(t0)
        self._note(prepared, f"{comp.name}: pulled {comp.ref} (image {image_id[:19]}) "
                             f"in {prepared.timings_ms[f'{comp.name}.pull']} ms")

        # 2. create beside the old container (a probe when ports are published), start
        t0 = time.monotonic()
        env = self._env(spec)
        for net in self.ensure_networks(spec):
            self._note(prepared, f"{comp.name}: created network {net}")
        taken = {n.lstrip("/") for c in existing for n in c.get("Names") or []}
        name = free_name(container_name(plan.app, comp.name, comp.digest), taken)
        publish_later = bool(spec.ports)
        run_name = free_name(f"{name}-probe", taken) if publish_later else name
        cid = self.create(spec, plan.sticker, name=run_name, env=env, probe=publish_later)
        prepared.started[comp.name] = cid
        self._check_cancelled()
        self.api.start(cid)
        prepared.timings_ms[f"{comp.name}.start"] = _ms(t0)
        self._note(prepared, f"{comp.name}: started {run_name} ({cid[:12]}) as {spec.role} "
                             f"in {prepared.timings_ms[f'{comp.name}.start']} ms"
                             + (f" with {len(env)} env var(s)" if env else ""))

        # 3. run to completion, or health
        t0 = time.monotonic()
        if spec.run_once:
            self.wait_completed(spec, run_name, cid, plan.run_timeout_s)
            prepared.timings_ms[f"{comp.name}.run"] = _ms(t0)
            self._note(prepared, f"{comp.name}: {spec.role} {run_name} exited 0 after "
                                 f"{prepared.timings_ms[f'{comp.name}.run']} ms")
        else:
            self.wait_healthy(comp.name, run_name, cid, t0 + plan.health_timeout_s, plan.health_timeout_s)
            prepared.timings_ms[f"{comp.name}.health"] = _ms(t0)
            self._note(prepared, f"{comp.name}: {run_name} healthy after "
                                 f"{prepared.timings_ms[f'{comp.name}.health']} ms")
            if publish_later:
                final = self.create(spec, plan.sticker, name=name, env=env)
                prepared.switch_at_commit[comp.name] = final
                ports = ", ".join(f"{p.published}->{p.target}/{p.protocol}" for p in spec.ports)
                self._note(prepared, f"{comp.name}: created {name} ({final[:12]}) publishing {ports}; "
                                     f"it starts at commit, once the old container released the ports")
            else:
                # The engine accepts unless-stopped; the docker stubs list only always and on-failure.
                self.api.update_container(cid, restart_policy=restart_policy(spec))  # type: ignore[arg-type]

        old = [c["Id"] for c in existing]
        if old:
            prepared.to_retire[comp.name] = old
            self._note(prepared, f"{comp.name}: {len(old)} old container(s) to retire on commit")

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
                    errors.append(f"{component}: cannot stop {cid[:12]}: {api_error_text(exc)}")
        if errors:
            raise DeployError(self.name, "commit failed: " + "; ".join(errors), prepared=prepared)
        specs = {s.component.name: s for s in plan.components}
        for component, cid in prepared.switch_at_commit.items():
            try:
                self._switch(plan, specs[component], cid, prepared)
            except Exception as exc:  # noqa: BLE001 - the engine restores every switched host
                text = str(exc).removeprefix(f"{self.name}: ") if isinstance(exc, DeployError) \
                    else api_error_text(exc)
                raise DeployError(self.name, _redact(f"commit failed: {text}", self._secrets),
                                  prepared=prepared) from None

    def _switch(self, plan: TargetPlan, spec: ComponentSpec, cid: str, prepared: PreparedChange) -> None:
        name = spec.component.name
        probe = prepared.started.get(name)
        if probe and probe != cid:
            self._remove_quietly(probe)
        t0 = time.monotonic()
        self.api.start(cid)
        self.wait_healthy(name, cid[:12], cid, t0 + plan.health_timeout_s, plan.health_timeout_s)
        self.api.update_container(cid, restart_policy=restart_policy(spec))  # type: ignore[arg-type]
        prepared.started[name] = cid
        prepared.timings_ms[f"{name}.switch"] = _ms(t0)
        prepared.log.append(f"{name}: {cid[:12]} started with its published ports, healthy after "
                            f"{prepared.timings_ms[f'{name}.switch']} ms")
        log.info("%s: %s: switched to %s", self.name, name, cid[:12])

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        errors: list[str] = []
        created = [*prepared.started.items(), *prepared.switch_at_commit.items()]
        for component, cid in created:
            try:
                self.api.remove_container(cid, force=True)
                prepared.log.append(f"{component}: discarded {cid[:12]}")
                log.info("%s: %s: discarded %s", self.name, component, cid[:12])
            except docker_errors.NotFound:
                continue
            except docker_errors.APIError as exc:
                errors.append(f"{component}: cannot remove {cid[:12]}: {api_error_text(exc)}")
        if errors:
            raise DeployError(self.name, "discard failed: " + "; ".join(errors), prepared=prepared)

    def _containers(self, app: str, component: str | None = None) -> list[dict[str, Any]]:
        return list_containers(self.api, app, component)
