"""Where a canary stands, as data read back from the ledger: the step plan, the step it is at and
its weight, the split the router last reported, each step's analysis and decision (and who made
it), and whether a step task is parked asking a human. What the Releases page, the REST promotion
detail, `stella why` and the board show. Plain Python (no Airflow).

It reads what promotion/canary.py writes, in the audit log's order (its `seq`, not its clock):
`deployment.canary_step` (a step began, before traffic moved), `deployment.canary_split` (the
split read back from the router), `deployment.canary_analysis` (the report), `deployment.canary_asked`
(the step task parked in Airflow's Human-in-the-loop) and `deployment.canary_decision`, and the
signed `canary` evidence of each decision (the split at the decision, its id).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from stella_operators.promotion import canary, strategies
from stella_operators.promotion.state import PromotionStatus as S

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate
    from stella_operators.ledger.audit import AuditEvent
    from stella_operators.ledger.protocols import ReadLedger
    from stella_operators.promotion.model import Promotion

CanaryState = Literal["not_started", "starting", "walking", "waiting_for_human", "completed", "rolled_back"]
StepState = Literal["pending", "analysing", "waiting_for_human", "advanced", "held", "rolled_back", "stopped"]
DONE: dict[str, StepState] = {"advance": "advanced", "hold": "held", "rollback": "rolled_back"}


class MetricReading(BaseModel):
    name: str
    phase: str = Field(description="the metric's phase: pass | fail | inconclusive | error | running")
    values: list[float | str] = Field(default_factory=list, description="its last measurement's values")
    message: str = ""


class StepAnalysis(BaseModel):
    outcome: str = Field(description="pass | fail | inconclusive")
    summary: str = ""
    metrics: list[MetricReading] = Field(default_factory=list)
    analyses: int = Field(1, description="analyses run at this step (a hold analyses again)")


class StepDecision(BaseModel):
    decision: Literal["advance", "hold", "rollback"]
    decided_by: str = Field(description="`stella`, or the Airflow user who answered the step's request")
    reason: str = ""
    at: datetime
    evidence_id: str | None = Field(None, description="the signed `canary` evidence record of this decision")


class CanaryStep(BaseModel):
    step: int = Field(description="1-based")
    of: int
    weight: int = Field(description="configured share of new requests to the new version, percent")
    state: StepState
    started_at: datetime | None = None
    distribution: dict[str, int] = Field(default_factory=dict,
                                         description="the split last read back from the router at this step")
    router_share: int | None = Field(None, description="the new version's share in `distribution`")
    analysis: StepAnalysis | None = None
    decisions: list[StepDecision] = Field(default_factory=list)
    waiting_since: datetime | None = Field(None, description="parked asking a human since")
    answer_by: datetime | None = Field(None, description="no answer by then rolls back")


class CanaryProgress(BaseModel):
    """A canary promotion's steps as they stand."""

    promotion_id: str
    state: CanaryState
    plan: list[int] = Field(description="the step plan, percent, ending at 100")
    group: str | None = Field(None, description="the target group running the new version (`release`: router none)")
    previous_group: str | None = None
    current_step: int | None = Field(None, description="the last step begun (1-based)")
    current_weight: int | None = None
    distribution: dict[str, int] = Field(default_factory=dict, description="the split the router last reported")
    waiting_for_human_since: datetime | None = None
    answer_by: datetime | None = None
    steps: list[CanaryStep] = Field(default_factory=list)


def _plan(estate: Estate, promo: Promotion, taken: dict[int, int]) -> list[int]:
    """The environment's plan now; steps taken beyond it (the plan shrank since) are kept."""
    cs = estate.environment(promo.environment).canary
    plan = list(cs.plan()) if cs is not None else []
    return plan + [taken[k] for k in sorted(taken) if k > len(plan)]


def _analysis(report: dict[str, Any], count: int) -> StepAnalysis:
    metrics = []
    for m in report.get("metrics") or []:
        last = (m.get("measurements") or [{}])[-1]
        metrics.append(MetricReading(name=str(m.get("name")), phase=str(m.get("phase", "")),
                                     values=list(last.get("values") or []), message=str(last.get("message") or "")))
    return StepAnalysis(outcome=str(report.get("outcome", "")), summary=str(report.get("summary", "")),
                        metrics=metrics, analyses=count)


def _is_canary(estate: Estate, promo: Promotion) -> bool:
    """(An environment removed from the estate since is not one.)"""
    return any(e.name == promo.environment and e.canary is not None for e in estate.environments)


def canary_progress(estate: Estate, ledger: ReadLedger, promo: Promotion) -> CanaryProgress | None:
    """The canary's progress of `promo`; None if its environment is not a canary environment (in the
    estate as it is now: the board asks this of every promotion it lists, so no ledger read before)."""
    if not _is_canary(estate, promo):
        return None
    deps = ledger.deployments_for(promo.id)
    dep = deps[-1] if deps else None
    events: list[AuditEvent] = ledger.audit_events(strategies.subject(dep.id)) if dep is not None else []
    mine = [e for e in events if e.action in (canary.STEP, canary.SPLIT, canary.ANALYSIS, canary.ASKED,
                                              canary.DECISION)]
    taken = {int(e.detail["step"]): int(e.detail["weight"]) for e in mine if e.action == canary.STEP}
    plan = _plan(estate, promo, taken)
    switch = strategies.switch_of(ledger, dep.id) if dep is not None else None
    records = [r for r in ledger.evidence_for(promotion_id=promo.id)
               if str(r.type) == "canary" and dep is not None and r.content.get("deployment_id") == dep.id]
    deploying = promo.status == S.DEPLOYING
    steps: list[CanaryStep] = []
    last_split: dict[str, int] = {}
    for k, weight in enumerate(plan, 1):
        step = CanaryStep(step=k, of=len(plan), weight=taken.get(k, weight), state="pending")
        of_step = [e for e in mine if e.detail.get("step") == k]
        evidence = [r for r in records if r.content.get("step") == k]
        analyses = [e for e in of_step if e.action == canary.ANALYSIS]
        for e in of_step:
            if e.action == canary.STEP:
                step.started_at, step.state, step.decisions = e.at, "analysing", []
                step.waiting_since = step.answer_by = None
            elif e.action == canary.SPLIT:
                step.distribution = {str(g): int(v) for g, v in (e.detail.get("distribution") or {}).items()}
            elif e.action == canary.ASKED:
                step.state, step.waiting_since = "waiting_for_human", e.at
                step.answer_by = e.at + timedelta(seconds=float(e.detail.get("timeout_s") or 0))
            elif e.action == canary.DECISION:
                record = evidence[len(step.decisions)] if len(step.decisions) < len(evidence) else None
                if record is not None and record.content.get("distribution"):
                    step.distribution = {str(g): int(v) for g, v in record.content["distribution"].items()}
                decision = str(e.detail.get("decision"))
                step.decisions.append(StepDecision(decision=decision, decided_by=e.actor,
                                                   reason=str(e.detail.get("reason") or ""), at=e.at,
                                                   evidence_id=record.id if record is not None else None))
                step.state = "analysing" if decision == "hold" else DONE.get(decision, "stopped")
                step.waiting_since = step.answer_by = None
        if analyses:
            step.analysis = _analysis(analyses[-1].detail.get("report") or {}, len(analyses))
        elif evidence and evidence[-1].content.get("analysis"):
            step.analysis = _analysis(evidence[-1].content["analysis"], 1)
        if step.state in ("analysing", "waiting_for_human") and not deploying:
            step.state, step.waiting_since, step.answer_by = "stopped", None, None  # the canary ended meanwhile
        group = str(switch["group"]) if switch and switch.get("group") else "release"
        step.router_share = step.distribution.get(group) if step.distribution else None
        if step.distribution:
            last_split = step.distribution
        steps.append(step)
    begun = [s for s in steps if s.started_at is not None]
    current = begun[-1] if begun else None
    progress = CanaryProgress(
        promotion_id=promo.id, state=_state(promo, current), plan=plan,
        group=(str(switch["group"]) if switch and switch.get("group") else ("release" if begun else None)),
        previous_group=switch.get("previous_group") if switch else None,
        current_step=current.step if current else None, current_weight=current.weight if current else None,
        distribution=last_split, steps=steps)
    if current is not None and current.state == "waiting_for_human":
        progress.waiting_for_human_since, progress.answer_by = current.waiting_since, current.answer_by
    return progress


def _state(promo: Promotion, current: CanaryStep | None) -> CanaryState:
    status = promo.status
    if status in (S.VERIFYING, S.DEPLOYED) and current is not None:
        return "completed"
    if status in (S.ROLLED_BACK, S.FAILED) and current is not None:
        return "rolled_back"
    if status == S.DEPLOYING:
        if current is None:
            return "starting"
        return "waiting_for_human" if current.state == "waiting_for_human" else "walking"
    return "not_started" if current is None else "rolled_back"
