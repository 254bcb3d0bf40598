"""CheckDriftOperator: compare every target with the release the ledger last verified; drift fails."""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from stella_operators.operators.base import PromotionStepOperator, actor_of, build_target


class CheckDriftOperator(PromotionStepOperator):
    """Read the facts of every target of the environment for the app and compare them with the
    release last verified there and its sticker. The outcome is recorded in the ledger either way
    (audit `drift.detected` / `drift.none`); drift fails the task with one sentence per finding
    (target, component, expected vs running). Nothing is changed on any target. Skipped while a
    promotion holds the deploy lock (its own verification checks the targets)."""

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.drift.service import DeploymentInProgress, check_drift

        run = context.get("dag_run")
        try:
            report = check_drift(self.estate, self.ledger, self.app, self.environment, build_target,
                                 actor=actor_of(context),
                                 run={"dag_id": self.dag_id, "run_id": getattr(run, "run_id", "") or ""})
        except DeploymentInProgress as exc:
            raise AirflowSkipException(str(exc)) from None
        if report.drifted:
            for finding in report.findings:
                self.log.error("DRIFT %s", finding.sentence())
            raise AirflowFailException(report.message())
        self.log.info("%s", report.message())
        return report.to_dict()
