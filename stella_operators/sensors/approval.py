"""ApprovalSensor: wait, deferred, for N distinct eligible approvals of a promotion."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

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
        from stella_operators.approvals.service import approval_state
        from stella_operators.promotion.state import PromotionStatus as S
        from stella_operators.triggers.ledger_poll import ApprovalTrigger

        promo = self.ledger.get_promotion(self.promotion_id)
        if promo.status == S.APPROVED:
            self.log.info("promotion %s needs no approvals", self.promotion_id)
            return {"status": "approved", "approvers": []}
        state = approval_state(self.estate, self.ledger, self.promotion_id)
        if state.status in ("approved", "rejected"):
            return self.execute_complete(context, {"status": state.status, "approvers": list(state.approvers),
                                                   "rejected_by": state.rejected_by})
        env = self.estate.environment(self.environment)
        timeout_s = env.approvals.timeout_s if env.approvals else 86400
        deadline = datetime.now(timezone.utc) + timedelta(seconds=timeout_s)
        self.log.info("promotion %s waits for %d more approval(s) until %s", self.promotion_id, state.needed,
                      deadline.isoformat())
        self.defer(trigger=ApprovalTrigger(self.promotion_id, self.estate_path, deadline.isoformat(),
                                           self.ledger_conn_id, self.poll_interval),
                   method_name="execute_complete", timeout=timedelta(seconds=timeout_s + 300))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from stella_operators.approvals.service import settle_approval
        from stella_operators.promotion.state import PromotionStatus as S

        status = settle_approval(self.ledger, self.promotion_id, event)
        if status == S.APPROVED:
            self.log.info("approved by %s", ", ".join(event.get("approvers", [])))
            return event
        if status == S.REJECTED:
            raise AirflowFailException(f"promotion {self.promotion_id} rejected by {event.get('rejected_by')}")
        raise AirflowFailException(f"promotion {self.promotion_id} failed closed: {event}")
