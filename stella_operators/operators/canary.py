"""CanaryStepOperator: one canary step -- move traffic, bake, analyse, then advance, roll back or ask."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator, build_target
from stella_operators.triggers.ledger_poll import MIN_WAIT_S

ADVANCE, HOLD, ROLL_BACK = "Advance", "Hold", "Roll back"
OPTIONS = [ADVANCE, HOLD, ROLL_BACK]
DECISION_OF = {ADVANCE: "advance", HOLD: "hold", ROLL_BACK: "rollback"}


class CanaryStepOperator(PromotionStepOperator):
    """Step ``step`` of the environment's canary (promotion/canary.py):

    1. set the step's weight on the router and read it back (``take_step``);
    2. bake ``canary.bake_s`` waiting deferred (no worker slot);
    3. run ``canary.analysis`` in the triggerer (AnalysisTrigger); without an analysis the step
       passes after its bake;
    4. pass: advance (a signed ``canary`` record); fail: traffic back to 0 % on the new version,
       the previous digests redeployed, the task fails without retry; inconclusive: as
       ``canary.on_inconclusive`` says -- ``ask`` parks the task in Airflow's Human-in-the-loop
       (``awaiting_input``, options Advance / Hold / Roll back, the measurements in the request
       body); Hold keeps the weight and analyses again; no answer within ``ask_timeout_s`` rolls back.
    Who decided (``stella`` or the Airflow user who answered) is in the evidence and the log.

    :param promotion_id: templated; normally ``{{ ti.xcom_pull(task_ids='request') }}``.
    :param step: 0-based index into the environment's canary plan.
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")
    ui_color = "#fff4e0"

    def __init__(self, *, promotion_id: str, step: int, **kwargs: Any):
        kwargs.setdefault("retries", 0)   # a step moved traffic; a retry must not take it twice blindly
        super().__init__(**kwargs)
        self.promotion_id = promotion_id
        self.step = step

    @property
    def canary(self) -> Any:
        from stella_operators.promotion.canary import settings_of

        return settings_of(self.estate.environment(self.environment))

    # -- 1. traffic ----------------------------------------------------------------------------
    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.promotion.canary import CanaryStopped, take_step
        from stella_operators.promotion.service import DeploymentFailed

        run, ti = context.get("dag_run"), context.get("ti")
        holder = f"{self.dag_id}/{getattr(run, 'run_id', '')}/{self.task_id}/try-{getattr(ti, 'try_number', 1)}"
        try:
            step = take_step(self.estate, self.ledger, self.signing_key, self.promotion_id, self.step, build_target,
                             holder=holder)
        except (CanaryStopped, DeploymentFailed) as exc:
            raise AirflowFailException(str(exc)) from None
        if step.done:
            self.log.info("canary step %d: the promotion is already past it", step.step)
            return {"step": step.step, "decision": "done"}
        self.log.info("STEP %d of %d: %d %% of new requests to %s; the router reports %s", step.step, step.of,
                      step.weight, step.group, step.distribution)
        return self._bake(context, step.to_dict())

    # -- 2. bake -------------------------------------------------------------------------------
    # Each resumption rebuilds the step from the ledger and the router (promotion/canary.py
    # current_step): nothing is carried in the deferral (dag.test() drops a deferral's kwargs).
    def _bake(self, context: Any, step: dict[str, Any]) -> dict[str, Any]:
        bake_s = self.canary.bake_s
        if bake_s > 0:
            moment = datetime.now(UTC) + timedelta(seconds=max(bake_s, MIN_WAIT_S))
            self.log.info("baking %.0f s at %d %% (deferred, until %s)", bake_s, step["weight"], moment.isoformat())
            from airflow.providers.standard.triggers.temporal import DateTimeTrigger

            self.defer(trigger=DateTimeTrigger(moment=moment), method_name="after_bake")
        return self.after_bake(context)

    def _step(self) -> Any:
        from stella_operators.promotion.canary import current_step

        return current_step(self.estate, self.ledger, self.promotion_id, self.step)

    # -- 3. analysis ---------------------------------------------------------------------------
    def after_bake(self, context: Any, event: Any = None) -> dict[str, Any]:
        cs = self.canary
        if cs.analysis is None:
            return self._decide(context, self._step(), "advance", "stella",
                                "no analysis configured: passes after its bake", None)
        from stella_operators.analysis.model import Analysis, render_queries
        from stella_operators.operators.analysis import _longest_s
        from stella_operators.promotion.canary import query_values
        from stella_operators.triggers.analysis import AnalysisTrigger

        step = self._step()
        rendered = render_queries(cs.analysis, query_values(self.estate, self.ledger, self.promotion_id, step))
        analysis = Analysis.model_validate(rendered)
        for m in analysis.metrics:
            self.log.info("metric %s: %s", m.name, m.query)
        uses_http = any(m.provider == "http_json" for m in analysis.metrics)
        self.log.info("analysing %d metric(s) (deferred to the triggerer)", len(analysis.metrics))
        self.defer(trigger=AnalysisTrigger(analysis=rendered, started_at=datetime.now(UTC).isoformat(),
                                           prometheus_conn_id=cs.metrics_conn_id,
                                           http_conn_id=cs.metrics_conn_id if uses_http else None),
                   method_name="after_analysis", timeout=timedelta(seconds=_longest_s(analysis) * 2 + 60))

    # -- 4. decision ---------------------------------------------------------------------------
    def after_analysis(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from stella_operators.promotion.canary import record_analysis

        step = self._step()
        outcome = event.get("outcome")
        if outcome == "error":  # the analysis could not run: nobody knows how the version does
            event = {**event, "outcome": "inconclusive", "summary": f"analysis could not run: {event.get('error')}"}
            outcome = "inconclusive"
        for metric in event.get("metrics", []):
            for i, m in enumerate(metric["measurements"], 1):
                self.log.info("%s #%d at %s: %s %s %s", metric["name"], i, m["at"], m["phase"], m["values"],
                              m["message"])
        summary = event.get("summary", "")
        self.log.info("ANALYSIS at %d %%: %s (%s)", step.weight, outcome, summary)
        record_analysis(self.ledger, step, event)
        if outcome == "pass":
            return self._decide(context, step, "advance", "stella", f"analysis passed: {summary}", event)
        if outcome == "fail":
            return self._decide(context, step, "rollback", "stella", f"analysis failed: {summary}", event)
        policy = self.canary.on_inconclusive
        if policy != "ask":
            return self._decide(context, step, "advance" if policy == "advance" else "rollback",
                                "stella", f"analysis inconclusive ({summary}); on_inconclusive: {policy}", event)
        return self._ask(context, step, event)

    def _ask(self, context: Any, step: Any, report: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import TaskAwaitingInput
        from airflow.sdk.execution_time.hitl import upsert_hitl_detail

        cs = self.canary
        upsert_hitl_detail(
            ti_id=context["task_instance"].id, options=OPTIONS, multiple=False, defaults=[ROLL_BACK], params={},
            subject=f"Canary of {self.app} in {self.environment}: step {step.step} ({step.weight} %) is "
                    "inconclusive",
            body=ask_body(step.to_dict(), report, cs.ask_timeout_s), assigned_users=None)
        from stella_operators.promotion.canary import record_ask

        record_ask(self.ledger, step, cs.ask_timeout_s)   # the Releases page says "waiting for a human since"
        self.log.info("ASKING a human (Required Actions): Advance / Hold / Roll back; no answer within %.0f s rolls "
                      "back", cs.ask_timeout_s)
        raise TaskAwaitingInput(method_name="after_answer", timeout=timedelta(seconds=cs.ask_timeout_s))

    def after_answer(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from stella_operators.promotion.canary import last_analysis

        step = self._step()
        report = last_analysis(self.ledger, step) or {}
        chosen = list(event.get("chosen_options") or [])
        user = event.get("responded_by_user") or {}
        if event.get("timedout") or not user:
            return self._decide(context, step, "rollback", "stella",
                                f"nobody answered within {self.canary.ask_timeout_s:.0f} s", report)
        who = str(user.get("name") or user.get("id"))
        if len(chosen) != 1 or chosen[0] not in DECISION_OF:
            raise AirflowFailException(f"answer {chosen} from {who} is not one of {OPTIONS}")
        self.log.info("ANSWER from %s: %s", who, chosen[0])
        return self._decide(context, step, DECISION_OF[chosen[0]], who,
                            f"{chosen[0]} chosen by {who} in Airflow (analysis: {report.get('summary', '')})", report)

    def _decide(self, context: Any, step: Any, decision: str, who: str, reason: str,
                report: dict[str, Any] | None) -> dict[str, Any]:
        from stella_operators.promotion.canary import decide

        status = decide(self.estate, self.ledger, self.signing_key, self.promotion_id, step, build_target,
                        decision=decision, decided_by=who, reason=reason, analysis=report)
        self.log.info("DECISION at step %d (%d %%): %s by %s -- %s; promotion %s", step.step, step.weight, decision,
                      who, reason, status)
        if decision == "rollback":
            raise AirflowFailException(f"canary rolled back at step {step.step} ({step.weight} %): {reason}; "
                                       f"promotion {status}")
        if decision == "hold":
            self.log.info("holding at %d %%: analysing again", step.weight)
            return self.after_bake(context)
        return {"step": step.step, "weight": step.weight, "distribution": step.distribution, "decision": decision,
                "decided_by": who, "promotion_status": status}


def ask_body(step: dict[str, Any], report: dict[str, Any], timeout_s: float) -> str:
    """The HITL request's body (Markdown): the step, the split read back and every measurement."""
    lines = [f"Step {step['step']} of {step['of']}: **{step['weight']} %** of new requests go to `{step['group']}` "
             f"(router reports `{json.dumps(step['distribution'])}`).",
             "", f"Analysis: **{report.get('outcome')}** -- {report.get('summary', '')}", ""]
    for metric in report.get("metrics", []):
        values = "; ".join(f"{m['phase']} {m['values']}{' ' + m['message'] if m['message'] else ''}"
                           for m in metric.get("measurements", []))
        lines.append(f"- `{metric['name']}`: {metric.get('phase')} -- {values or 'no measurement'}")
    lines += ["", f"**Advance** to the next step, **Hold** at this weight and analyse again, or **Roll back** "
              f"(traffic to 0 % on the new version, previous digests redeployed). No answer within {timeout_s:.0f} s "
              "rolls back."]
    return "\n".join(lines)
