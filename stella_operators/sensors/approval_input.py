"""The approval sensor's wait as an Airflow 3.3 Human-in-the-loop request, answered only by us.

The sensor parks its task in `awaiting_input` (no trigger, no triggerer) with a HITL request whose
only assignee is `stella-operators`, a name no Airflow user has: people see the pending promotion
in Airflow's Required Actions view, but Airflow refuses their answers there (403). The approval
call that settles the promotion in the ledger (or the abort that cancels it) then, here in the API
server process and in one metadata-DB transaction, answers the request and ends the parked task
instance with the ledger's verdict: `success` when approved, `failed` (no retry) when rejected or
cancelled. The ledger has decided in the call's own locked transaction; the parked sensor would
only re-read that status, so it is not resumed. The scheduler starts the deploy task in its next
loop.

Why not resume the sensor (Airflow's own `handle_event_submit`, as the HITL endpoint does): Airflow
3.3 can fail a resumed task when the executor's "success" for the parking attempt is processed
after the resumed attempt was queued (same try number; apache/airflow#71580, #72716). On this
machine that event comes 0.1-5 s after parking (the worker's supervisor can sleep up to
`[workers] min_heartbeat_interval` before it notices the parked process exited). A task instance
that is already `success` or `failed` is not touched by that stale event, so an answer is safe at
any moment, also 0 s after parking. Resuming is still how the deadline ends the wait: Airflow's
awaiting_input timeout sweep resumes the sensor, which settles the time-out in the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

log = logging.getLogger(__name__)

APPROVAL_TASK_ID = "approval"            # the sensor's task id in every promote DAG (dag_builder)
RESPONDENT = {"id": "stella-operators", "name": "stella-operators"}
OPTIONS = ["Settled"]                    # the answer only says "look at the ledger now"
ANSWER_WITHIN_S = 60.0
SUCCEEDS = frozenset({"approved"})
FAILS = frozenset({"rejected", "cancelled", "failed"})
AUDIT_EVENT = "stella approval settled"  # Airflow's audit log (Browse > Audit Log, the task's events)


def wake_approval_sensor(ledger, promotion_id: str) -> str:
    """End the promotion's parked approval task with the ledger's verdict now (or as soon as it has
    parked). Never raises: the sensor's deadline is the fallback. Returns what happened (for logs
    and tests): succeeded | failed | later | done | absent | unsettled | no-run | error."""
    try:
        promo = ledger.get_promotion(promotion_id)
        if not promo.dag_id or not promo.run_id:
            return "no-run"
        status = str(promo.status)
        if status not in SUCCEEDS | FAILS:
            return "unsettled"
        outcome = _end_parked(promo.dag_id, promo.run_id, status, promotion_id)
        if outcome == "later":
            threading.Thread(target=_end_soon, args=(promo.dag_id, promo.run_id, status, promotion_id),
                             name=f"stella-wake-{promotion_id}", daemon=True).start()
        return outcome
    except Exception:  # noqa: BLE001 - waking is an optimisation; the ledger already holds the decision
        log.exception("could not end the approval task of promotion %s", promotion_id)
        return "error"


def _end_soon(dag_id: str, run_id: str, status: str, promotion_id: str) -> None:
    """The sensor had written its request but not parked yet: try again until it has."""
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            if _end_parked(dag_id, run_id, status, promotion_id) != "later":
                return
        except Exception:  # noqa: BLE001 - retried; the deadline sweep is the fallback
            log.exception("ending the approval task of %s/%s failed; retrying", dag_id, run_id)
    log.warning("approval task of %s/%s never parked; its deadline will end the wait", dag_id, run_id)


def _end_parked(dag_id: str, run_id: str, status: str, promotion_id: str) -> str:
    """One attempt, in one metadata-DB transaction, locking the task instance then its HITL request
    (Airflow's own lock order)."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.log import Log
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState as TIS
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TI).where(TI.dag_id == dag_id, TI.run_id == run_id,
                                             TI.task_id == APPROVAL_TASK_ID, TI.map_index == -1)
                            .with_for_update(of=TI))
        if ti is None:
            return "absent"
        if ti.state not in (TIS.AWAITING_INPUT, TIS.RUNNING):
            # Finished; deferred on the trigger (which polls); or not started yet: the sensor reads
            # the ledger when it starts.
            return "done"
        hitl = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id).with_for_update(of=HITLDetail))
        if hitl is None or hitl.response_received:
            # Running without a request: the sensor reads the ledger after writing it, and will see this.
            return "done"
        if ti.state != TIS.AWAITING_INPUT:
            return "later"          # request written, parking under way
        now = datetime.now(UTC)
        hitl.responded_by = dict(RESPONDENT)
        hitl.responded_at = now
        hitl.chosen_options = list(OPTIONS)
        hitl.params_input = {}
        session.add(hitl)
        verdict = TIS.SUCCESS if status in SUCCEEDS else TIS.FAILED
        ti.clear_next_method_args()
        ti.end_date = now
        ti.set_state(verdict, session=session)
        session.add(Log(event=AUDIT_EVENT, task_instance=ti, owner=RESPONDENT["id"],
                        extra=f"promotion {promotion_id} is {status} in the stella ledger: approval task {verdict}"))
        return "succeeded" if verdict == TIS.SUCCESS else "failed"
