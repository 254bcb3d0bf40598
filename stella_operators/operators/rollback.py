"""Rollback DAG steps: request a rollback, choose the path (gates or emergency), seal the outcome.

Deploying and verifying reuse DeployReleaseOperator and VerifyPromotionOperator: a rollback is a
promotion of an earlier verified release (promotion/rollback_request.py).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.standard.operators.branch import BaseBranchOperator
from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator, actor_of
from stella_operators.operators.locker import archive_quietly

TRUE_WORDS = ("true", "1", "yes", "on")


class RequestRollbackOperator(PromotionStepOperator):
    """Choose the release to return to and record the rollback as a promotion of it.

    :param release: name or id (templated); empty: the last release verified in this environment
        before the current one. Anything not verified here fails the run at once, listing the
        releases one may choose.
    :param reason: why (templated, required; white space alone is refused).
    :param emergency: "true" to skip the gates and approvals (templated); recorded as signed
        ``override`` evidence.
    """

    template_fields = (*StellaBaseOperator.template_fields, "release", "reason", "emergency")

    def __init__(self, *, release: str = "", reason: str = "", emergency: str | bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.release = release
        self.reason = reason
        self.emergency = emergency

    def execute(self, context: Any) -> str:
        from stella_operators.promotion.rollback_request import RollbackRefused, RollbackRequest, request_rollback

        run = context.get("dag_run")
        emergency = str(self.emergency).strip().lower() in TRUE_WORDS
        req = RollbackRequest(app=self.app, environment=self.environment, release=(self.release or "").strip(),
                              requested_by=actor_of(context), reason=self.reason or "", emergency=emergency,
                              dag_id=self.dag_id, run_id=getattr(run, "run_id", "") or "")
        try:
            promo = request_rollback(self.estate, self.ledger, self.signing_key, req)
        except RollbackRefused as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info("rollback of %s in %s to release %s requested by %s as promotion %s%s", self.app,
                      self.environment, promo.release_id, req.requested_by, promo.id,
                      " (EMERGENCY: gates and approvals skipped)" if emergency else "")
        return promo.id


class RollbackPathOperator(BaseBranchOperator):
    """Follow `gates` (then approvals), or `emergency` when the request approved the rollback as an
    emergency: decided from the ledger, where the request recorded it."""

    template_fields = ("promotion_id",)

    def __init__(self, *, promotion_id: str, gates_task: str, emergency_task: str,
                 ledger_conn_id: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id
        self.gates_task, self.emergency_task = gates_task, emergency_task
        self.ledger_conn_id = ledger_conn_id

    def choose_branch(self, context: Any) -> str:
        from stella_operators.hooks.ledger import LedgerHook
        from stella_operators.promotion.rollback_request import approved_in_emergency

        ledger = LedgerHook(self.ledger_conn_id).get_conn()
        if approved_in_emergency(ledger, self.promotion_id):
            self.log.warning("emergency rollback: gates and approvals are skipped (signed override evidence)")
            return self.emergency_task
        return self.gates_task


class RecordRollbackOperator(PromotionStepOperator):
    """Seal the `rollback` evidence (state left, state returned to, who asked and why) whatever the
    run's outcome; fail the run unless the environment was returned to the chosen release.

    :param promotion_id: templated; the request task's return value.
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.rollback_request import record_rollback_outcome

        if not (self.promotion_id or "").startswith("prm-"):
            raise AirflowFailException("the rollback was never requested (see the request task's log): "
                                       "nothing changed, nothing to record")
        returned, content = record_rollback_outcome(self.ledger, self.signing_key, self.promotion_id)
        archive_quietly(self.ledger, self.promotion_id)
        left, to = content["left"], content.get("returned_to") or {}
        if not returned:
            raise AirflowFailException(f"rollback from {left['release_name']} did not complete: {content['error']}")
        self.log.info("%s in %s returned from %s to %s (requested by %s: %s)", self.app, self.environment,
                      left["release_name"], to["release_name"], content["requested_by"], content["reason"])
        return {"from": left["release_name"], "to": to["release_name"], "status": content["status"]}
