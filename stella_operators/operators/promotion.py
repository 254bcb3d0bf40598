"""Promotion operators: request (path check), deploy (any target type), verify (emit the Asset)."""

from __future__ import annotations

from typing import Any

from stella_operators.operators.base import StellaBaseOperator, actor_of, build_target


class _PromotionOperator(StellaBaseOperator):
    def __init__(self, *, app: str, environment: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.app = app
        self.environment = environment


class RequestPromotionOperator(_PromotionOperator):
    """Record a promotion of a release into an environment and decide whether it may proceed.

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

    def execute(self, context: Any) -> str:
        from stella_operators.promotion.service import PromotionRequest, request_promotion

        release = (self.release or "").strip() or self._release_from_assets(context)
        run = context.get("dag_run")
        req = PromotionRequest(app=self.app, environment=self.environment, release=release,
                               requested_by=actor_of(context), reason=self.reason or "",
                               dag_id=self.dag_id, run_id=getattr(run, "run_id", "") or "")
        promo = request_promotion(self.estate, self.ledger, self.signing_key, req)
        self.log.info("Promotion %s of %s into %s approved", promo.id, release, self.environment)
        return promo.id


class DeployReleaseOperator(_PromotionOperator):
    """Deploy the promotion's release to every target of the environment (two-phase, rollback).

    :param promotion_id: templated; normally ``{{ ti.xcom_pull(task_ids='request') }}``.
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.service import deploy_promotion

        outcome = deploy_promotion(self.estate, self.ledger, self.signing_key, self.promotion_id, build_target)
        for t in outcome.targets:
            self.log.info("%s: %s %s", t.target, t.status, t.timings_ms)
        return {"status": outcome.status, "targets": {t.target: t.status for t in outcome.targets}}


class VerifyPromotionOperator(_PromotionOperator):
    """Check every target runs exactly the release digests; mark the promotion deployed and
    emit the environment's Asset event (extra: release id, name, content hash)."""

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")

    def __init__(self, *, promotion_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.promotion_id = promotion_id

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.service import verify_promotion

        result = verify_promotion(self.estate, self.ledger, self.signing_key, self.promotion_id, build_target)
        for outlet in self.outlets or []:
            context["outlet_events"][outlet].extra = {
                "release_id": result["release_id"], "release_name": result["release_name"],
                "content_hash": result["content_hash"], "promotion_id": self.promotion_id}
        return result
