"""Promotion operators: request (path check), deploy (any target type), verify (emit the Asset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator, actor_of, build_target
from stella_operators.operators.locker import archive_quietly
from stella_operators.triggers.ledger_poll import MIN_WAIT_S


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

    Holds the deploy lock of (app, environment) -- of the environment with ``lock_scope:
    environment`` -- renewing its lease while deploying; when another promotion holds it, waits
    deferred (no worker slot) or fails at once, as the environment's ``lock`` setting says. Checks
    the freeze windows again first (``at_deploy: wait`` defers until the window ends).

    Retries once by default: a retry after the worker died mid-deployment rolls the deployment
    back (the promotion ends ``rolled_back``). A kill (``on_kill``) or ``execution_timeout`` during
    the deployment rolls back too.

    :param promotion_id: templated; normally ``{{ ti.xcom_pull(task_ids='request') }}``.
    :param batch: rolling environments: the batch this task deploys (0-based; the DAG has one task
        per batch, chained). Batch 0 takes the lock and reads every target; later batches take it
        again and renew it (promotion/batches.py). None: the whole deployment in this task.
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, lock_poll_interval: float = 2.0, batch: int | None = None,
                 **kwargs: Any):
        kwargs.setdefault("retries", 1)
        kwargs.setdefault("retry_delay", timedelta(seconds=5))
        super().__init__(**kwargs)
        self.promotion_id = promotion_id
        self.lock_poll_interval = lock_poll_interval
        self.batch = batch
        self._deploying = False

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.service import (
            DeploymentFailed,
            EnvironmentLocked,
            FrozenAtDeploy,
            deploy_promotion,
            fail_for_lock,
        )

        run = context.get("dag_run")
        ti = context.get("ti")
        holder = f"{self.dag_id}/{getattr(run, 'run_id', '')}/try-{getattr(ti, 'try_number', 1)}"
        self._deploying = True
        try:
            if self.batch:  # batches 2..N: the lock and the previous digests come from batch 1
                from stella_operators.promotion.batches import deploy_batch

                outcome = deploy_batch(self.estate, self.ledger, self.signing_key, self.promotion_id, build_target,
                                       self.batch, holder=holder)
            else:
                outcome = deploy_promotion(self.estate, self.ledger, self.signing_key, self.promotion_id,
                                           build_target, holder=holder, batch=self.batch)
        except DeploymentFailed as exc:  # rolled back and recorded: a retry would not change the verdict
            archive_quietly(self.ledger, self.promotion_id)
            raise AirflowFailException(str(exc)) from None
        except FrozenAtDeploy as exc:
            return self._wait_for_freeze(exc)
        except EnvironmentLocked as exc:
            env = self.estate.environment(self.environment)
            if env.lock == "refuse":
                fail_for_lock(self.ledger, self.signing_key, self.promotion_id, reason="lock.held", holder=exc.holder)
                raise AirflowFailException(f"{exc}; this environment refuses to wait (lock: refuse)") from None
            return self._wait_for_lock(exc.holder)
        finally:
            self._deploying = False
        archive_quietly(self.ledger, self.promotion_id, outcome=outcome)
        return self._report(outcome)

    def _report(self, outcome: Any) -> dict[str, Any]:
        """One log line per target of this task (its batch), and the same as XCom for the grid."""
        mine = {t.target: t for t in outcome.targets}
        if self.batch is not None:
            from stella_operators.promotion.strategies import policy_of

            names = policy_of(self.estate.environment(self.environment)).batches[self.batch]
            mine = {n: mine[n] for n in names if n in mine}
            self.log.info("batch %d: %s", self.batch + 1, ", ".join(names))
        for t in mine.values():
            self.log.info("%s: %s %s%s", t.target, t.status, t.timings_ms, f" ({t.error})" if t.error else "")
        result: dict[str, Any] = {"status": outcome.status, "targets": {n: t.status for n, t in mine.items()}}
        if self.batch is not None:
            result["batch"] = self.batch + 1
        for extra in ("group", "previous_group", "skipped"):
            if getattr(outcome, extra, None):
                result[extra] = getattr(outcome, extra)
        return result

    def on_kill(self) -> None:
        """Called by the task runner on SIGTERM and after an execution timeout. While deploying, the
        exception raised here lands in the deployment, which rolls back and re-raises it."""
        from stella_operators.promotion.service import DeploymentInterrupted

        if self._deploying:
            self._deploying = False
            raise DeploymentInterrupted("the deploy task was killed")

    def _wait_for_freeze(self, exc):
        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        # Not earlier than the triggers' start-up wait (apache/airflow#71580, see ledger_poll.py).
        moment = max(exc.opens_at, datetime.now(UTC) + timedelta(seconds=MIN_WAIT_S))
        self.log.info("%s; waiting (deferred) until %s", exc, moment.isoformat())
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_after_freeze")

    def execute_after_freeze(self, context: Any, event: Any = None) -> dict[str, Any]:
        return self.execute(context)

    def _wait_for_lock(self, holder: str):
        from stella_operators.triggers.ledger_poll import EnvironmentLockTrigger

        env = self.estate.environment(self.environment)
        deadline = datetime.now(UTC) + timedelta(seconds=env.deploy_timeout_s)
        self.log.info("the deploy lock of %s in %s is held by promotion %s: waiting (deferred) until %s",
                      self.app if env.lock_scope == "app" else "every app", self.environment, holder,
                      deadline.isoformat())
        self.defer(trigger=EnvironmentLockTrigger(self.environment, self.promotion_id, deadline.isoformat(),
                                                  self.ledger_conn_id, self.lock_poll_interval, app=self.app,
                                                  scope=env.lock_scope),
                   method_name="execute_after_lock", timeout=timedelta(seconds=env.deploy_timeout_s + 300))

    def execute_after_lock(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from stella_operators.promotion.service import fail_for_lock

        if event.get("status") == "ended":
            raise AirflowFailException(f"promotion {self.promotion_id} ended as {event.get('promotion_status')} "
                                       "while waiting for the deploy lock")
        if event.get("status") != "free":
            reason = "lock.timeout" if event.get("status") == "timeout" else "lock.error"
            fail_for_lock(self.ledger, self.signing_key, self.promotion_id, reason=reason,
                          holder=event.get("holder"), extra={k: v for k, v in event.items() if k not in ("holder",)})
            raise AirflowFailException(f"the deploy lock of {self.app} in {self.environment} stayed held: {event}")
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
            archive_quietly(self.ledger, self.promotion_id)
            raise AirflowFailException(str(exc)) from None
        archive_quietly(self.ledger, self.promotion_id)
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "release_id": result["release_id"], "release_name": result["release_name"],
                "content_hash": result["content_hash"], "promotion_id": self.promotion_id}
        return result


class RollBackIfLeftOperator(PromotionStepOperator):
    """Runs when a deploy batch task failed for good (trigger rule ``one_failed``): if the promotion
    is still ``deploying`` or ``verifying`` (its tasks died and their retries too), roll every host
    back from the ledger and end it. A promotion a batch already ended is left as it is."""

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.recovery import roll_back_promotion

        report = roll_back_promotion(self.estate, self.ledger, self.signing_key, self.promotion_id, build_target,
                                     reason="a deploy batch task failed and left the deployment unfinished")
        self.log.info("promotion %s: %s (%s)", self.promotion_id, report.status, report.reason)
        return {"status": report.status, "not_restored": report.not_restored}


class RetirePreviousSetOperator(PromotionStepOperator):
    """Blue-green: once the switch-back window has passed (waiting deferred, no worker slot), take
    the previous set out of the router and remove its workloads -- only if it still gets no traffic
    and runs what it ran at the switch (promotion/retire.py)."""

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.retire import retire_due_at

        due = retire_due_at(self.estate, self.ledger, self.promotion_id)
        if due is not None and due > datetime.now(UTC):
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            moment = max(due, datetime.now(UTC) + timedelta(seconds=MIN_WAIT_S))
            self.log.info("the previous set stays for switch-back until %s; waiting (deferred)", moment.isoformat())
            self.defer(trigger=DateTimeTrigger(moment=moment), method_name="execute_after_window")
        return self.execute_after_window(context)

    def execute_after_window(self, context: Any, event: Any = None) -> dict[str, Any]:
        from stella_operators.promotion.retire import retire_previous_set

        result = retire_previous_set(self.estate, self.ledger, self.promotion_id, build_target)
        self.log.info("retired %s: removed %s; left alone %s; problems %s", result.group, result.removed,
                      result.skipped, result.errors)
        return {"group": result.group, "removed": result.removed, "skipped": result.skipped, "errors": result.errors}
