"""A/B by target groups: one deploy task per stage (promotion/ab.py, promotion/ab_stages.py)."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import build_target
from stella_operators.operators.promotion import DeployReleaseOperator


class DeployStageOperator(DeployReleaseOperator):
    """Run one stage of an A/B deployment (``strategy: ab``): start the stage's share of group B
    with the release, watch B's health for ``stage_wait_s`` against the stage's health threshold,
    then stop the same share of group A; a failure brings A back and takes B down.

    Stage 1 is the promotion's deploy step (freeze re-check, deploy lock, what every target runs
    before, which group is A); later stages take the same lock again (promotion/ab_stages.py).
    The stage's wait is spent in the task, renewing the deploy lock's lease and reading B's health
    all along: a deferred wait would read nothing (a trigger must not call the targets) and let the
    lease run out.

    :param stage: the stage this task runs (0-based; the DAG has one task per stage, chained).
    """

    def __init__(self, *, stage: int, **kwargs: Any):
        super().__init__(batch=stage, **kwargs)
        self.stage = stage

    def execute(self, context: Any) -> dict[str, Any]:
        if self.stage == 0:  # the promotion's own deploy step, stage 1 of the strategy
            return super().execute(context)
        from stella_operators.promotion.ab_stages import deploy_stage
        from stella_operators.promotion.service import DeploymentFailed

        run = context.get("dag_run")
        ti = context.get("ti")
        holder = f"{self.dag_id}/{getattr(run, 'run_id', '')}/try-{getattr(ti, 'try_number', 1)}"
        self._deploying = True
        try:
            outcome = deploy_stage(self.estate, self.ledger, self.signing_key, self.promotion_id, build_target,
                                   self.stage, holder=holder)
        except DeploymentFailed as exc:  # rolled back and recorded: a retry would not change the verdict
            raise AirflowFailException(str(exc)) from None
        finally:
            self._deploying = False
        return self._report(outcome)

    def _report(self, outcome: Any) -> dict[str, Any]:
        """One log line per target the stage started or stopped, B's health, and the same as XCom."""
        result: dict[str, Any] = {"status": outcome.status, "stage": self.stage + 1,
                                  "targets": {t.target: t.status for t in outcome.targets}}
        for t in outcome.targets:
            self.log.info("%s: %s %s%s", t.target, t.status, t.timings_ms, f" ({t.error})" if t.error else "")
        for extra in ("group", "previous_group"):
            if getattr(outcome, extra, None):
                result[extra] = getattr(outcome, extra)
        for report in getattr(outcome, "stages", []):
            self.log.info("stage %d (%d %%): started %s, stopped %s; B healthy %s %% over %d reading(s)%s",
                          report.index + 1, report.share, report.up, report.down,
                          "-" if report.healthy_share is None else f"{report.healthy_share:.0f}", report.readings,
                          f"; {report.error}" if report.error else "")
            result.update(share=report.share, started=report.up, stopped=report.down,
                          healthy_share=report.healthy_share)
        return result
