"""ApprovalSensor: wait, deferred, for N distinct eligible approvals of a promotion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator


class ApprovalSensor(PromotionStepOperator):
    """Clears when the promotion has its approvals; fails at once on a rejection; fails closed on
    timeout. Holds no worker slot while waiting (the trigger polls the ledger in the triggerer).

    Approvers act through ``POST /stella/api/v1/promotions/{id}/approvals`` (the Approvals page
    in the Airflow UI, the REST API, or ``stella approve``); their identity is Airflow's.

    :param promotion_id: templated.
    :param poll_interval: seconds between ledger reads in the trigger.
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")
    ui_color = "#fff4e5"

    def __init__(self, *, promotion_id: str, poll_interval: float = 2.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> dict[str, Any] | None:
        from stella_operators.approvals.service import approval_state, settle_approval
        from stella_operators.promotion.state import PromotionStatus as S

        # Re-count first: settles a promotion whose approvals are complete (e.g. given before an upgrade).
        status = settle_approval(self.estate, self.ledger, self.signing_key, self.promotion_id, {"status": "check"})
        if status != S.AWAITING_APPROVAL:
            return self._finish(status)
        env = self.estate.environment(self.environment)
        timeout_s = env.approvals.timeout_s if env.approvals else 86400
        deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
        state = approval_state(self.estate, self.ledger, self.promotion_id)
        self.log.info("promotion %s waits for %d more approval(s) until %s", self.promotion_id, state.needed,
                      deadline.isoformat())
        self._wait(deadline)

    def _wait(self, deadline: datetime) -> NoReturn:  # defer() raises TaskDeferred
        from stella_operators.triggers.ledger_poll import ApprovalTrigger

        left = max(0.0, (deadline - datetime.now(UTC)).total_seconds())
        self.defer(trigger=ApprovalTrigger(self.promotion_id, self.estate_path, deadline.isoformat(),
                                           self.ledger_conn_id, self.poll_interval),
                   method_name="execute_complete", timeout=timedelta(seconds=left + 300))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from stella_operators.approvals.service import settle_approval
        from stella_operators.promotion.state import PromotionStatus as S

        # The event is a hint; the ledger's tally decides (and a timeout fails closed, with evidence).
        status = settle_approval(self.estate, self.ledger, self.signing_key, self.promotion_id, event)
        if status == S.AWAITING_APPROVAL and event.get("deadline"):
            self.log.warning("trigger said %s, but promotion %s still awaits approval; waiting on",
                             event.get("status"), self.promotion_id)
            self._wait(datetime.fromisoformat(event["deadline"]))
        return self._finish(status)

    def _finish(self, status) -> dict[str, Any]:
        from stella_operators.approvals.service import approval_state
        from stella_operators.promotion.state import PromotionStatus as S

        state = approval_state(self.estate, self.ledger, self.promotion_id)
        if status == S.APPROVED:
            self.log.info("approved by %s", ", ".join(state.approvers) or "nobody (none needed)")
            return {"status": "approved", "approvers": list(state.approvers)}
        if status == S.REJECTED:
            raise AirflowFailException(f"promotion {self.promotion_id} rejected by {state.rejected_by}")
        raise AirflowFailException(f"promotion {self.promotion_id} is {status}, not approved: failed closed "
                                   f"({len(state.approvers)} approval(s), {state.needed} more were needed)")
