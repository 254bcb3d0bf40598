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
