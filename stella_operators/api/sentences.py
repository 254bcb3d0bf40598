"""What the pages and the CLI say to people: refusal codes and recorded outcomes as sentences.

Plain functions over plain data (codes, audit details, verdict dicts); no Airflow, no I/O.
"""

from __future__ import annotations

from typing import Any

from stella_operators.approvals.policy import (
    BOUND_TO_OTHER_RELEASE,
    CREATOR_CANNOT_APPROVE,
    DUPLICATE,
    NOT_IN_GROUPS,
    PLAN_CHANGED,
    REQUESTER_CANNOT_APPROVE,
)

# Addressed to the person who tried (the page shows them to that person only).
REFUSALS: dict[str, str] = {
    REQUESTER_CANNOT_APPROVE: "You requested this promotion, so you cannot approve it (separation of duties).",
    CREATOR_CANNOT_APPROVE: "You created this release, so you cannot approve its promotion (separation of duties).",
    NOT_IN_GROUPS: "You are not in an approver group of this environment, so you cannot approve it.",
    BOUND_TO_OTHER_RELEASE: "The release changed since this page was loaded: reload and check the digests again.",
    PLAN_CHANGED: "What the deployment would change on the hosts changed since this page was loaded: reload "
                  "and review the plan again.",
    DUPLICATE: "You have already approved this promotion; one person counts once.",
}


def refusal_sentence(code: str | None, groups: list[str] | None = None) -> str:
    """A refusal code as a sentence; unknown codes are shown as they are, never hidden."""
    if not code:
        return ""
    text = REFUSALS.get(code, f"Refused ({code}).")
    if code == NOT_IN_GROUPS and groups:
        text = text.replace("an approver group of this environment",
                            f"an approver group of this environment ({', '.join(groups)})")
    return text


def _rejected(detail: dict[str, Any]) -> str:
    who = detail.get("rejected_by") or "an approver"
    return f"{who} rejected it, so it ended without deploying."


def ended_sentence(status: str, actor: str, detail: dict[str, Any] | None, environment: str) -> str:
    """Why a promotion ended, from its last recorded transition (actor and detail as the audit log has them)."""
    detail = detail or {}
    reason = detail.get("reason")
    if detail.get("failed_gates"):
        gates = ", ".join(detail["failed_gates"])
        return (f"Its gate(s) {gates} did not pass, so it was rejected without deploying; nothing was changed "
                f"(approvals cannot outvote a failed gate).")
    if "rejected_by" in detail or (status == "rejected" and actor not in ("stella", "system")):
        return _rejected(detail if "rejected_by" in detail else {"rejected_by": actor})
    if status == "rejected":
        return "It was rejected without deploying; nothing was changed."
    if reason == "approval.timeout":
        return "Nobody approved it in time, so it was closed without deploying (approvals fail closed)."
    if reason == "approval.error":
        return (f"The approval wait failed ({detail.get('error') or 'no detail recorded'}), "
                "so it was closed without deploying.")
    if reason == "plan.changed":
        what = "; ".join(detail.get("differences") or []) or "no difference recorded"
        return (f"It was not deployed: what it would change in {environment} is no longer what was approved "
                f"({what}). Nothing was changed; request it again and the approvers will see the new plan.")
    if reason == "lock.held":
        return (f"Another promotion ({detail.get('holder')}) was deploying into {environment}, and this "
                f"environment refuses to wait (lock: refuse). Nothing was changed.")
    if reason == "lock.timeout":
        return f"{environment} stayed locked by another promotion until the deploy deadline. Nothing was changed."
    if reason == "cancelled" or status == "cancelled":
        why = detail.get("why") or detail.get("comment") or detail.get("reason_text")
        return f"{actor} cancelled it" + (f": {why}" if why else ".")
    if detail.get("problems"):
        return "Verification found the targets not running the release: " + "; ".join(detail["problems"]) + "."
    if detail.get("error"):
        verb = "was rolled back" if status == "rolled_back" else "failed"
        return f"The deployment {verb}: {detail['error']}"
    if detail:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(detail.items()))
        return f"It ended as {status.replace('_', ' ')} ({parts})."
    return f"It ended as {status.replace('_', ' ')}; no reason was recorded."


def gate_sentence(gate: dict[str, Any]) -> str:
    """One gate verdict (dict with gate, type, verdict, reasons, message, remedy) as a sentence."""
    verdict = {"pass": "passed", "fail": "failed", "pending": "is waiting"}.get(gate.get("verdict", ""),
                                                                             gate.get("verdict", ""))
    name, kind = gate.get("gate") or gate.get("name"), gate.get("type", "gate")
    text = f"Gate {name} {verdict}" if name == kind else f"Gate {name} ({kind}) {verdict}"
    message = (gate.get("message") or "").strip()
    if name and message.startswith(f"{name}: "):  # gates prefix their own name; say it once
        message = message[len(name) + 2:]
    text += f": {message}" if message else (f" ({', '.join(gate.get('reasons') or [])})" if gate.get("reasons") else "")
    if not text.endswith("."):
        text += "."
    if gate.get("remedy") and gate.get("verdict") != "pass":
        text += f" To clear it: {gate['remedy'].rstrip('.')}."
    return text


# -- canary progress (promotion/canary_progress.py, as JSON) -----------------------------------------

_DONE_BY = {"advance": "advanced", "hold": "held", "rollback": "rolled back"}
_OUTCOME = {"pass": "passed", "fail": "failed", "inconclusive": "was inconclusive"}


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, int | float) else str(v)


def _readings(analysis: dict[str, Any]) -> str:
    """`error-rate 0.01; latency no data`: each metric's last values."""
    parts = [f"{m['name']} " + (", ".join(_value(v) for v in m.get("values") or []) or m.get("message") or "no data")
             for m in analysis.get("metrics") or []]
    return "; ".join(parts)


def _decisions(step: dict[str, Any]) -> str:
    return ", then ".join(f"{_DONE_BY.get(d['decision'], d['decision'])} by {d['decided_by']}"
                          for d in step.get("decisions") or [])


def canary_step_line(step: dict[str, Any]) -> str:
    """One step, compact: `step 2 of 3: 50 % (router: 50 %) -- analysis pass: error-rate 0.01 -- advanced by stella`."""
    text = f"step {step['step']} of {step['of']}: {step['weight']} %"
    if step["state"] == "pending":
        return text + " -- not yet"
    if step.get("router_share") is not None:
        text += f" (router: {step['router_share']} %)"
    analysis = step.get("analysis")
    if analysis:
        readings = _readings(analysis)
        text += f" -- analysis {analysis['outcome']}" + (f": {readings}" if readings else "")
    elif step.get("decisions"):
        text += " -- no analysis"
    else:
        text += " -- baking / analysing"
    if step.get("decisions"):
        text += f" -- {_decisions(step)}"
    if step["state"] == "waiting_for_human":
        text += " -- waiting for a human"
    elif step["state"] == "analysing" and step.get("decisions"):
        text += " -- analysing again"
    elif step["state"] == "stopped":
        text += " -- stopped here"
    return text


def canary_label(progress: dict[str, Any]) -> str:
    """The board cell's few words: `canary 50 %`, `canary 50 %, waiting for a human`."""
    state, weight = progress["state"], progress.get("current_weight")
    if weight is None:
        return "canary starting (0 %)" if state == "starting" else "canary not started"
    if state == "completed":
        return "canary done (100 %)"
    if state == "rolled_back":
        return f"canary rolled back at {weight} %"
    return f"canary {weight} %" + (", waiting for a human" if state == "waiting_for_human" else "")


def canary_sentences(progress: dict[str, Any]) -> list[str]:
    """The canary's walk as sentences (`stella why`, the Releases page's "why?")."""
    plan = " -> ".join(f"{w} %" for w in progress["plan"])
    state = progress["state"]
    if state == "not_started":
        return [f"It is a canary ({plan}); no step has begun."]
    if state == "starting":
        return [f"It is a canary ({plan}): the release is going to the idle group, which gets no traffic yet."]
    out = [f"It is a canary ({plan}), at step {progress['current_step']} of {len(progress['plan'])} "
           f"({progress['current_weight']} % of new requests to {progress['group']})."
           if state in ("walking", "waiting_for_human") else
           f"It was a canary ({plan}); it " + ("reached 100 %." if state == "completed" else
                                             f"stopped at step {progress['current_step']} "
                                             f"({progress['current_weight']} %) and was rolled back.")]
    for step in progress["steps"]:
        if step["state"] == "pending":
            continue
        text = f"Step {step['step']} ({step['weight']} %)"
        if step.get("router_share") is not None:
            text += f": the router reported {step['router_share']} % to the new version"
        analysis = step.get("analysis")
        if analysis:
            readings = _readings(analysis)
            text += (f"; its analysis {_OUTCOME.get(analysis['outcome'], analysis['outcome'])}"
                     + (f" ({readings})" if readings else ""))
        if step.get("decisions"):
            text += f"; {_decisions(step)}"
        if step["state"] == "waiting_for_human":
            text += (f"; it waits for a human since {step['waiting_since']} (Airflow's Required Actions: Advance, "
                     f"Hold or Roll back; no answer by {step['answer_by']} rolls back)")
        elif step["state"] == "analysing":
            text += "; baking and analysing" + (" again" if step.get("decisions") else "")
        elif step["state"] == "stopped":
            text += "; the canary stopped here"
        out.append(text + ".")
    return out
