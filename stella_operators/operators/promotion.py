"""Promotion operators: request (path check), deploy (any target type), verify (emit the Asset)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator, actor_of, build_target


class RequestPromotionOperator(PromotionStepOperator):
    """Record a promotion of a release into an environment (status ``evaluating``).

    :param release: release id or name (templated). Ignored in an Asset-triggered run: there the
        triggering event must name the upstream promotion, which the ledger checks (see
        promotion/auto_promote.py), and the promotion is requested on behalf of its requester.
        Empty in a scheduled run: the release the upstream environment verified last.
    :param reason: why (templated); recorded in the ledger and the evidence.
    """

    template_fields = (*StellaBaseOperator.template_fields, "release", "reason")

    def __init__(self, *, release: str = "", reason: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.release = release
        self.reason = reason

    @staticmethod
    def _asset_events(context: Any) -> list:
        """The run's triggering Asset events as Airflow recorded them (empty unless Asset-triggered)."""
        from stella_operators.promotion.auto_promote import UpstreamEvent

        events = context.get("triggering_asset_events") or {}
        out = []
        for asset, evs in dict(events).items():
            for ev in evs:
                out.append(UpstreamEvent(
                    asset=getattr(asset, "uri", None) or str(asset), extra=dict(getattr(ev, "extra", None) or {}),
                    source_dag_id=getattr(ev, "source_dag_id", None), source_run_id=getattr(ev, "source_run_id", None),
                    source_task_id=getattr(ev, "source_task_id", None), timestamp=getattr(ev, "timestamp", None)))
        return out

    def _latest_upstream(self) -> str:
        """Scheduled runs: the release most recently verified in the upstream environment."""
        for env in self.estate.upstream(self.environment):
            rel = self.ledger.deployed_release(self.app, env)
            if rel is not None:
                return rel.id
        return ""

    def execute(self, context: Any) -> str:
        # Imported here, as in the other operators: DAG files import this module at every parse.
        from stella_operators.promotion.auto_promote import check_upstream_event
        from stella_operators.promotion.service import PromotionRefused, PromotionRequest, request_promotion

        run = context.get("dag_run")
        requested_by, reason, trigger = actor_of(context), self.reason or "", None
        events = self._asset_events(context)
        try:
            if events:  # Asset-triggered: the event only points at an upstream promotion; the ledger decides
                auto = check_upstream_event(self.estate, self.ledger, self.app, self.environment, events)
                release, requested_by, trigger = auto.release_id, auto.requested_by, auto.trigger
                reason = (f"{reason or 'automatic promotion'}: {trigger['release_name']} verified in "
                          f"{auto.upstream.environment} by promotion {auto.upstream.id}")
            else:
                release = (self.release or "").strip() or self._latest_upstream()
            req = PromotionRequest(app=self.app, environment=self.environment, release=release,
                                   requested_by=requested_by, reason=reason, dag_id=self.dag_id,
                                   run_id=getattr(run, "run_id", "") or "", trigger=trigger)
            promo = request_promotion(self.estate, self.ledger, req)
        except PromotionRefused as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("Promotion %s of %s into %s requested by %s", promo.id, release, self.environment,
                      req.requested_by)
        if trigger:
            self.log.info("Automatic promotion after %s; Asset event %s", trigger["upstream_promotion"],
                          trigger["posted_by"])
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
