"""ApprovalSensor: wait, without a worker slot, until a promotion's approvals settle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from stella_operators.estate.loader import load_estate_for_app
from stella_operators.estate.models import Estate
from stella_operators.operators.base import PromotionStepOperator, StellaBaseOperator, build_target
from stella_operators.sensors.approval_input import OPTIONS, RESPONDENT

try:  # Airflow 3.3+: park in awaiting_input (Human-in-the-loop), resumed by the approval call
    from airflow.sdk.exceptions import TaskAwaitingInput
    from airflow.sdk.execution_time.hitl import upsert_hitl_detail
except ImportError:  # pragma: no cover - older Airflow: the trigger only
    TaskAwaitingInput = None  # type: ignore[assignment,misc]
    upsert_hitl_detail = None  # type: ignore[assignment]

WAIT_FOR = ("input", "trigger")


class ApprovalSensor(PromotionStepOperator, BaseSensorOperator):
    """Clears when the promotion is approved; fails at once on a rejection; fails closed on timeout.

    The approval call that completes the quorum (or records a counted rejection) settles the
    promotion in the ledger; this sensor only observes and re-counts (`settle_approval`).
    Waiting holds no worker slot. With ``wait_for="input"`` (default, Airflow 3.3+) the task parks
    in ``awaiting_input`` with a Human-in-the-loop request that only stella-operators may answer;
    the approval call that settles the promotion ends the parked task with the ledger's verdict at
    once (sensors/approval_input.py), and the deadline resumes it to fail closed. With
    ``wait_for="trigger"`` (and always under ``dag.test()``, which enforces no awaiting_input
    deadline) it defers to ApprovalTrigger, which polls the ledger.

    Approvers act through ``POST /stella/api/v1/promotions/{id}/approvals`` (the Approvals page
    in the Airflow UI, the REST API, or ``stella approve``); their identity is Airflow's.

    :param promotion_id: templated.
    :param poll_interval: seconds between ledger reads (``poke`` and the trigger).
    :param wait_for: ``input`` or ``trigger``.
    """

    template_fields = (*StellaBaseOperator.template_fields, "promotion_id")
    ui_color = "#fff4e5"

    def __init__(self, *, promotion_id: str, poll_interval: float = 2.0, wait_for: str = "input", **kwargs: Any):
        if wait_for not in WAIT_FOR:
            raise ValueError(f"ApprovalSensor wait_for is one of {', '.join(WAIT_FOR)}, not {wait_for!r}")
        kwargs.setdefault("poke_interval", poll_interval)
        # A stale executor event can fail a just-resumed attempt (see approval_input.py; only the
        # deadline resumes a parked sensor now); a retry re-reads the ledger and settles at once.
        # Verdicts (rejected, timeout) fail without retry.
        kwargs.setdefault("retries", 2)
        kwargs.setdefault("retry_delay", timedelta(seconds=1))
        super().__init__(**kwargs)
        self.promotion_id = promotion_id
        self.poll_interval = poll_interval
        self.wait_for = wait_for

    @cached_property
    def estate(self) -> Estate:
        # The sensor only reads its environment's approval rules (and acts on no target): its app's
        # part of the estate, so that its start does not grow with the estate (the acting operators
        # validate the whole file).
        return load_estate_for_app(self.estate_path, self.app)

    def poke(self, context: Any) -> bool:
        """Settled (approved)? Raises on rejection or failure. Used only if run as a plain sensor."""
        status = self._settle({"status": "check"})
        return status != "awaiting_approval" and bool(self._finish(status))

    def execute(self, context: Any) -> dict[str, Any] | None:
        # Re-count first: settles a promotion whose approvals are complete (e.g. given before an upgrade).
        status = self._settle({"status": "check"})
        if status != "awaiting_approval":
            return self._finish(status)
        self._record_plan_shown()
        env = self.estate.environment(self.environment)
        timeout_s = env.approvals.timeout_s if env.approvals else 86400
        deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
        self.log.info("promotion %s waits for approvals until %s", self.promotion_id, deadline.isoformat())
        return self._wait(context, deadline)

    def _record_plan_shown(self) -> None:
        """The plan (per target: current -> new digest) as it stood when the wait began, once, in
        the ledger. Unreadable hosts are rows of the plan; nothing here may fail the wait."""
        from stella_operators.approvals.plans import record_plan_shown  # not at DAG parse time

        try:
            plan = record_plan_shown(self.estate, self.ledger, self.promotion_id, build_target)
        except Exception:  # noqa: BLE001 - the approvers still see the live plan on the page
            self.log.warning("could not record the plan shown to approvers", exc_info=True)
            return
        for line in plan.lines() if plan is not None else []:
            self.log.info("plan: %s", line)

    def _wait(self, context: Any, deadline: datetime) -> dict[str, Any] | None:
        left = timedelta(seconds=max(0.0, (deadline - datetime.now(UTC)).total_seconds()))
        if self._parks(context):
            ti = context["task_instance"]
            upsert_hitl_detail(ti_id=ti.id, options=list(OPTIONS), subject=f"Approve promotion {self.promotion_id}",
                               body=f"{self.app} into {self.environment}: approve or reject with stella "
                                    "(Approvals page, REST or `stella approve`); this request is answered by "
                                    "stella-operators when the approvals settle.",
                               params={}, assigned_users=[{"id": RESPONDENT["id"], "name": RESPONDENT["name"]}])
            # An approval that settled before the request existed could not answer it: look again.
            status = self._settle({"status": "check"})
            if status != "awaiting_approval":
                return self._finish(status)
            raise TaskAwaitingInput(method_name="execute_complete", kwargs={"deadline": deadline.isoformat()},
                                    timeout=left)
        from stella_operators.triggers.ledger_poll import ApprovalTrigger

        self.defer(trigger=ApprovalTrigger(self.promotion_id, self.estate_path, deadline.isoformat(),
                                           self.ledger_conn_id, self.poll_interval),
                   method_name="execute_complete", timeout=left + timedelta(seconds=300))
        return None

    def _parks(self, context: Any) -> bool:
        if self.wait_for != "input" or TaskAwaitingInput is None:
            return False
        # dag.test() never resolves awaiting_input by itself (no deadline sweep): wait on the trigger there.
        return getattr(context.get("dag_run"), "triggering_user_name", None) != "dag_test"

    def execute_complete(self, context: Any, event: dict[str, Any], deadline: str | None = None) -> dict[str, Any]:
        event = _as_wait_event(event, deadline)
        # The event is a hint; the ledger's tally decides (and a timeout fails closed, with evidence).
        status = self._settle(event)
        if status == "awaiting_approval" and event.get("deadline"):
            self.log.warning("woken (%s), but promotion %s still awaits approval; waiting on",
                             event.get("status"), self.promotion_id)
            result = self._wait(context, datetime.fromisoformat(event["deadline"]))
            if result is not None:
                return result
        return self._finish(status)

    def _settle(self, event: dict[str, Any]) -> str:
        from stella_operators.approvals.service import settle_approval

        # Settled already (normally by the approval call that woke us): nothing to write or sign.
        status = str(self.ledger.get_promotion(self.promotion_id).status)
        if status != "awaiting_approval":
            return status
        return str(settle_approval(self.estate, self.ledger, self.signing_key, self.promotion_id, event))

    def _finish(self, status: str) -> dict[str, Any]:
        from stella_operators.approvals.service import approval_state

        state = approval_state(self.estate, self.ledger, self.promotion_id)
        if status == "approved":
            self.log.info("approved by %s", ", ".join(state.approvers) or "nobody (none needed)")
            return {"status": "approved", "approvers": list(state.approvers)}
        if status == "rejected":
            raise AirflowFailException(f"promotion {self.promotion_id} rejected by {state.rejected_by}")
        raise AirflowFailException(f"promotion {self.promotion_id} is {status}, not approved: failed closed "
                                   f"({len(state.approvers)} approval(s), {state.needed} more were needed)")


def _as_wait_event(event: dict[str, Any], deadline: str | None) -> dict[str, Any]:
    """Trigger events pass through; a HITL resume becomes `answered`, its deadline sweep `timeout`."""
    if "status" in event:
        return event
    if event.get("error_type") == "timeout":
        return {"status": "timeout", "deadline": deadline}
    if "error" in event:
        return {"status": "error", "error": str(event.get("error")), "deadline": deadline}
    return {"status": "answered", "deadline": deadline}
