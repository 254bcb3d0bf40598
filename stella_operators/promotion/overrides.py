"""Manual changes around a promotion's tasks: recorded, shown, never counted.

A person can mark a task of a promotion run success or failed (or mark the whole run) in Airflow's
UI or REST API. That changes Airflow's view of the run, not the ledger's: a promotion becomes
`deployed` only through the deploy and verify steps themselves (a verify step that finds the
promotion not `verifying` refuses), so a deploy task marked success by hand never makes a release
count as verified. What the person did is kept as an audit event on the promotion (who, which task,
which state, when) and shown as a flag on the Releases page and in `stella why`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stella_operators.ledger.protocols import AuditLog

ACTION = "override.task_state"


def record_manual_change(ledger: AuditLog, promotion_id: str, *, by: str, dag_id: str, run_id: str,
                         task_id: str | None, state: str) -> None:
    ledger.audit(by, ACTION, f"promotion:{promotion_id}",
                 {"dag_id": dag_id, "run_id": run_id, "task_id": task_id, "state": state})


def manual_changes(ledger: AuditLog, promotion_id: str) -> list[dict[str, Any]]:
    """What people changed by hand, oldest first: {by, task_id, state, at}."""
    return [{"by": e.actor, "task_id": e.detail.get("task_id"), "state": e.detail.get("state"),
             "at": e.at.isoformat()}
            for e in ledger.audit_events(f"promotion:{promotion_id}") if e.action == ACTION]


def change_sentence(change: dict[str, Any], status: str) -> str:
    what = f"task {change['task_id']}" if change["task_id"] else "the whole run"
    return (f"{change['by']} marked {what} {change['state']} by hand at {change['at']}; the ledger does not "
            f"count it (the promotion is {status})")
