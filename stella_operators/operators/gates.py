"""EvaluateGatesOperator: run every gate of the environment, record verdicts, reject or go on."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator, actor_of


class EvaluateGatesOperator(PromotionStepOperator):
    """Evaluate the promotion's gates (upstream, then the estate's: security, freeze, policy, ...).

    :param promotion_id: templated; normally the request task's return value.
    :param freeze_override_reason: templated; when set, the triggering user asks to override an
        active freeze window (allowed only for the window's listed overriders; evidence of its own).
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id", "freeze_override_reason")

    def __init__(self, *, promotion_id: str, freeze_override_reason: str = "", **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id
        self.freeze_override_reason = freeze_override_reason

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.hooks.registry import registry_access
        from stella_operators.promotion.gating import GatesNotEvaluated, PromotionBlocked, evaluate_promotion

        labels = {}
        if (self.freeze_override_reason or "").strip():
            labels = {"freeze_override_by": actor_of(context),
                      "freeze_override_reason": self.freeze_override_reason.strip()}
        try:
            outcome = evaluate_promotion(self.estate, self.ledger, self.signing_key, self.promotion_id, labels=labels,
                                         registry=registry_access(self.estate))
        except (PromotionBlocked, GatesNotEvaluated) as exc:
            raise AirflowFailException(str(exc)) from None  # a verdict, not a glitch: no retry
        if outcome.recorded:
            self.log.info("promotion %s was decided earlier (gates are evaluated once); the recorded outcome "
                          "stands: %d approval(s) required", self.promotion_id, outcome.approvals_required)
        for v in outcome.verdicts:
            self.log.info("gate %s (%s): %s %s", v.gate_name, v.gate_type, v.verdict, ", ".join(v.reasons))
        return {"approvals_required": outcome.approvals_required}
