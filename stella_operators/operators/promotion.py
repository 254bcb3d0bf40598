"""Promotion operators: request (path check), deploy (any target type), verify (emit the Asset)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator, actor_of, build_target


class RequestPromotionOperator(PromotionStepOperator):
    """Record a promotion of a release into an environment (status ``evaluating``).

    :param release: release id or name (templated). Empty with an Asset-triggered run: the
        release that the upstream environment just verified.
    :param reason: why (templated); recorded in the ledger and the evidence.
    """

    template_fields = (*StellaBaseOperator.template_fields, "release", "reason")

    def __init__(self, *, release: str = "", reason: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.release = release
        self.reason = reason

    def _release_from_assets(self, context: Any) -> str:
        events = context.get("triggering_asset_events") or {}
        for _, evs in dict(events).items():
            for ev in evs:
                rid = (getattr(ev, "extra", None) or {}).get("release_id")
                if rid:
                    return rid
        return ""

    def _latest_upstream(self) -> str:
        """Scheduled runs: the release most recently verified in the upstream environment."""
        for env in self.estate.upstream(self.environment):
            rel = self.ledger.deployed_release(self.app, env)
            if rel is not None:
                return rel.id
        return ""

    def execute(self, context: Any) -> str:
        from stella_operators.promotion.service import PromotionRefused, PromotionRequest, request_promotion

        release = (self.release or "").strip() or self._release_from_assets(context) or self._latest_upstream()
        run = context.get("dag_run")
        req = PromotionRequest(app=self.app, environment=self.environment, release=release,
                               requested_by=actor_of(context), reason=self.reason or "",
                               dag_id=self.dag_id, run_id=getattr(run, "run_id", "") or "")
        try:
            promo = request_promotion(self.estate, self.ledger, req)
        except PromotionRefused as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("Promotion %s of %s into %s requested by %s", promo.id, release, self.environment,
                      req.requested_by)
        return promo.id


class DeployReleaseOperator(PromotionStepOperator):
    """Deploy the promotion's release to every target of the environment (two-phase, rollback).

    Holds the environment's deploy lock; when another promotion holds it, waits deferred (no
    worker slot) or fails at once, as the environment's ``lock`` setting says.

    :param promotion_id: templated; normally ``{{ ti.xcom_pull(task_ids='request') }}``.
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, lock_poll_interval: float = 2.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id
        self.lock_poll_interval = lock_poll_interval

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.service import DeploymentFailed, EnvironmentLocked, deploy_promotion
        from stella_operators.promotion.state import PromotionStatus as S

        run = context.get("dag_run")
        try:
            outcome = deploy_promotion(self.estate, self.ledger, self.signing_key, self.promotion_id, build_target,
                                       holder=f"{self.dag_id}/{getattr(run, 'run_id', '')}")
        except DeploymentFailed as exc:  # rolled back and recorded: a retry would not change the verdict
            raise AirflowFailException(str(exc)) from None
        except EnvironmentLocked as exc:
            env = self.estate.environment(self.environment)
            if env.lock == "refuse":
                self.ledger.transition(self.promotion_id, S.FAILED, actor="stella",
                                       detail={"reason": "lock.held", "holder": exc.holder})
                raise AirflowFailException(f"{exc}; this environment refuses to wait (lock: refuse)") from None
            return self._wait_for_lock(exc.holder)
        for t in outcome.targets:
            self.log.info("%s: %s %s", t.target, t.status, t.timings_ms)
        return {"status": outcome.status, "targets": {t.target: t.status for t in outcome.targets}}

    def _wait_for_lock(self, holder: str):
        from stella_operators.triggers.ledger_poll import EnvironmentLockTrigger

        env = self.estate.environment(self.environment)
        deadline = datetime.now(timezone.utc) + timedelta(seconds=env.deploy_timeout_s)
        self.log.info("environment %s is locked by promotion %s: waiting (deferred) until %s",
                      self.environment, holder, deadline.isoformat())
        self.defer(trigger=EnvironmentLockTrigger(self.environment, self.promotion_id, deadline.isoformat(),
                                                  self.ledger_conn_id, self.lock_poll_interval),
                   method_name="execute_after_lock", timeout=timedelta(seconds=env.deploy_timeout_s + 300))

    def execute_after_lock(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from stella_operators.promotion.state import PromotionStatus as S

        if event.get("status") != "free":
            self.ledger.transition(self.promotion_id, S.FAILED, actor="stella",
                                   detail={"reason": "lock.timeout", **event})
            raise AirflowFailException(f"environment {self.environment} stayed locked: {event}")
        return self.execute(context)


class VerifyPromotionOperator(PromotionStepOperator):
    """Check every target runs exactly the release digests; mark the promotion deployed and
    emit the environment's Asset event (extra: release id, name, content hash)."""

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.service import DeploymentFailed, verify_promotion

        try:
            result = verify_promotion(self.estate, self.ledger, self.signing_key, self.promotion_id, build_target)
        except DeploymentFailed as exc:
            raise AirflowFailException(str(exc)) from None
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "release_id": result["release_id"], "release_name": result["release_name"],
                "content_hash": result["content_hash"], "promotion_id": self.promotion_id}
        return result
