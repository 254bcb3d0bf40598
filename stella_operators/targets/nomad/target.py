"""`nomad` target: one Nomad service job whose docker tasks run the release (python-nomad client).

prepare  - if the diff changes anything: read the job, change only the images of the release's
           tasks (`repo@sha256:...`), set each such group's `update` block from the settings,
           put the sticker, the deployment id and the version it replaces in the job's Meta;
           register it with the read JobModifyIndex (check-and-set) and wait for its deployment:
           with canaries, until they are healthy beside the old allocations; without, to the end.
commit   - promote the canaries and wait until the deployment is successful.
discard  - fail the deployment (Nomad stops the canaries; with auto_revert it reverts itself),
           then revert to the previous version if the job still is this deployment's.
restore  - from the job's own Meta: if it is this deployment's version, fail its deployment and
           revert to the version named in `stella.previous-version` (idempotent).
finalize - nothing: Nomad replaced the old allocations on promotion.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from stella_operators.targets.api_target import PollingTarget
from stella_operators.targets.contract import DeployError, PreparedChange, TargetFacts, TargetPlan, sticker_labels
from stella_operators.targets.diff import diff
from stella_operators.targets.nomad import NomadSettings
from stella_operators.targets.nomad.facts import (
    META_DEPLOYMENT,
    META_PREVIOUS,
    META_STICKER,
    DeploymentState,
    deployment_state,
    next_job,
    parse_facts,
    update_block,
)

log = logging.getLogger(__name__)


def _error_text(exc: Exception) -> str:
    resp = getattr(exc, "nomad_resp", None)
    text = getattr(resp, "text", None)
    if text is not None:
        return f"HTTP {getattr(resp, 'status_code', '?')}: {str(text).strip()[:300]}"
    return f"{type(exc).__name__}: {exc}"


class NomadTarget(PollingTarget[NomadSettings]):
    """A Nomad job. `client` is a `nomad.Nomad` (NomadHook(...).get_conn() in Airflow); cancel() stops
    a deployment wait at its next poll."""

    kind = "nomad"
    keeps_runtime = ("a nomad target keeps the command, env and checks of the job's task; remove them from the "
                     "estate component or change the job")
    wrap_errors = (Exception,)  # python-nomad errors carry the agent's answer

    def describe(self) -> str:
        return f"job {self.settings.job!r}"

    def error_text(self, exc: Exception) -> str:
        return _error_text(exc)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - python-nomad errors carry the agent's answer
            raise DeployError(self.name, f"{what}: {_error_text(exc)}") from None

    def job(self) -> dict[str, Any]:
        return dict(self._call(f"cannot read job {self.settings.job!r}", self.client.job.get_job, self.settings.job))

    def facts(self, app: str) -> TargetFacts:
        job = self.job()
        allocs = self._call("cannot read the job's allocations", self.client.job.get_allocations, self.settings.job)
        return parse_facts(self.name, app, job, list(allocs), self.settings.tasks)

    def deployment(self, version: int) -> DeploymentState:
        deps = self._call("cannot read the job's deployments", self.client.job.get_deployments, self.settings.job)
        return deployment_state(list(deps or []), version)

    # prepare -----------------------------------------------------------------------------------
    def _prepare(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        t0 = time.monotonic()
        changes = diff(self.facts(plan.app), plan)
        prepared.unchanged = [c.component for c in changes.changes if c.action == "keep"]
        if not changes.changed:
            prepared.log.append("job already runs the release, left alone")
            return
        job = self.job()
        s = self.settings
        images = {s.tasks.get(spec.component.name, spec.component.name): spec.component.ref
                  for spec in plan.components}
        meta = {k: str(v) for k, v in sticker_labels(plan.sticker).items() if k in (META_STICKER, META_DEPLOYMENT)}
        meta[META_PREVIOUS] = str(job["Version"])
        try:
            spec = next_job(job, images, meta, update_block(
                canary=s.canary, max_parallel=s.max_parallel, auto_revert=s.auto_revert,
                min_healthy_time_s=s.min_healthy_time_s, healthy_deadline_s=s.healthy_deadline_s,
                progress_deadline_s=s.progress_deadline_s))
        except ValueError as exc:
            raise DeployError(self.name, str(exc)) from None
        self._call("cannot register the job", self.client.job.register_job, s.job,
                   {"Job": spec, "EnforceIndex": True, "JobModifyIndex": job["JobModifyIndex"]})
        version = int(self.job()["Version"])
        if version <= int(job["Version"]):
            raise DeployError(self.name, f"registering made no new version of job {s.job!r} (still {version})")
        for c in changes.changes:
            if c.action != "keep":
                prepared.started[c.component] = f"{s.job}@v{version}"
                prepared.to_retire[c.component] = [f"{s.job}@v{job['Version']}"]
        prepared.log.append(f"registered version {version} of job {s.job} (from {job['Version']}, images changed only)")
        state = self.wait(version, stop_at_canaries=s.canary > 0)
        prepared.timings_ms["deploy"] = int((time.monotonic() - t0) * 1000)
        prepared.log.append(f"version {version}: {state.phase.replace('_', ' ')}")

    def wait(self, version: int, *, stop_at_canaries: bool) -> DeploymentState:
        """Poll the job's deployment until it succeeds (or its canaries are healthy, when asked);
        DeployError when it failed, at the timeout, or when cancelled."""
        deadline = time.monotonic() + self.settings.deployment_timeout_s
        while True:
            state = self.deployment(version)
            if state.phase == "successful" or (stop_at_canaries and state.phase == "canaries_healthy"):
                return state
            if state.phase == "failed":
                raise DeployError(self.name, f"deployment of job {self.settings.job!r} version {version} failed: "
                                  f"{state.reason}")
            self.stop_if_cancelled()
            if time.monotonic() >= deadline:
                raise DeployError(self.name, f"deployment of job {self.settings.job!r} version {version} not done "
                                  f"after {self.settings.deployment_timeout_s:g}s: {state.reason}")
            time.sleep(self.settings.poll_interval_s)

    # commit / discard / restore / finalize -------------------------------------------------------
    @staticmethod
    def _version_of(workload: str) -> int:
        return int(workload.rsplit("@v", 1)[1])

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        if not prepared.started:
            return
        version = self._version_of(next(iter(prepared.started.values())))
        state = self.deployment(version)
        if state.phase == "canaries_healthy" and state.deployment_id:
            self._call("cannot promote the canaries", self.client.deployment.promote_deployment_all,
                       state.deployment_id)
            prepared.log.append(f"version {version}: canaries promoted")
        try:
            self.wait(version, stop_at_canaries=False)
        except DeployError as exc:
            raise DeployError(self.name, str(exc).removeprefix(f"{self.name}: "), prepared=prepared) from None
        prepared.log.append(f"version {version}: deployment successful")

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        if prepared.started:
            self._undo(plan.deployment_id)
            prepared.log.append(f"job {self.settings.job} back on its previous version")

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        self._undo(plan.deployment_id)

    def _undo(self, deployment_id: str) -> None:
        job = self.job()
        meta = job.get("Meta") or {}
        if meta.get(META_DEPLOYMENT) != deployment_id:
            return  # never registered, or already reverted (by Nomad's auto_revert or an earlier undo)
        version = int(job["Version"])
        state = self.deployment(version)
        if state.deployment_id and state.phase in ("in_progress", "canaries_healthy"):
            self._call("cannot fail the deployment", self.client.deployment.fail_deployment, state.deployment_id)
            job = self.job()
            if (job.get("Meta") or {}).get(META_DEPLOYMENT) != deployment_id:
                self.wait(int(job["Version"]), stop_at_canaries=False)  # Nomad's auto_revert took it back
                return
        before = meta.get(META_PREVIOUS)
        if before is None:
            raise DeployError(self.name, f"job version {version} carries no {META_PREVIOUS} meta: cannot tell which "
                              "version to restore")
        self._call(f"cannot revert to version {before}", self.client.job.revert_job, self.settings.job,
                   int(before), int(job["Version"]))
        self.wait(int(self.job()["Version"]), stop_at_canaries=False)
        log.info("%s: job %s reverted to version %s", self.name, self.settings.job, before)

    def finalize(self, plan: TargetPlan) -> None:
        return None
