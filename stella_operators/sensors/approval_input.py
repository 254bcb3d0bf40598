"""The approval sensor's wait as an Airflow 3.3 Human-in-the-loop request, answered only by us.

The sensor parks its task in `awaiting_input` (no trigger, no triggerer) with a HITL request whose
only assignee is `stella-operators`, a name no Airflow user has: people see the pending promotion
in Airflow's Required Actions view, but Airflow refuses their answers there (403). The approval
call that settles the promotion in the ledger then answers the request here, in the API server
process, the way Airflow's own HITL endpoint does (`handle_event_submit`): the scheduler resumes
the sensor at once. The answer carries no decision; the resumed sensor re-counts the ledger.

Airflow 3.3 can fail a resumed task when the executor's "success" for the parking attempt is
processed only after the resumed attempt started running (same try number; apache/airflow#71580,
#72716; seen here up to ~5 s after parking on a loaded machine). So an answer waits until the task
has been parked for PARK_GRACE_S (if it cannot be given now, a short-lived background thread gives
it), and the sensor retries (ApprovalSensor's default retries): a retry re-reads the ledger and
clears at once. If this process dies before answering, the sensor's deadline (Airflow's
awaiting_input timeout sweep) still resumes it, and the ledger decides.
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
PARK_GRACE_S = 3.0
ANSWER_WITHIN_S = 60.0


def wake_approval_sensor(ledger, promotion_id: str) -> str:
    """Resume the promotion's parked approval sensor now (or as soon as it is safe). Never raises:
    the sensor's deadline is the fallback. Returns what happened (for logs and tests)."""
    try:
        promo = ledger.get_promotion(promotion_id)
        if not promo.dag_id or not promo.run_id:
            return "no-run"
        outcome = _answer(promo.dag_id, promo.run_id)
        if outcome == "later":
            threading.Thread(target=_answer_soon, args=(promo.dag_id, promo.run_id),
                             name=f"stella-wake-{promotion_id}", daemon=True).start()
        return outcome
    except Exception:  # noqa: BLE001 - waking is an optimisation; the ledger already holds the decision
        log.exception("could not wake the approval sensor of promotion %s", promotion_id)
        return "error"


def _answer_soon(dag_id: str, run_id: str) -> None:
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            if _answer(dag_id, run_id) != "later":
                return
        except Exception:  # noqa: BLE001 - retried; the deadline sweep is the fallback
            log.exception("waking the approval sensor of %s/%s failed; retrying", dag_id, run_id)
    log.warning("approval sensor of %s/%s never parked long enough to be woken; its deadline will", dag_id, run_id)


def _answer(dag_id: str, run_id: str) -> str:
    """One attempt, in one metadata-DB transaction, locking the task instance then its HITL request
    (Airflow's own lock order): answered | later | done | absent."""
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.models.trigger import handle_event_submit
    from airflow.triggers.base import TriggerEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState as TIS
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(select(TI).where(TI.dag_id == dag_id, TI.run_id == run_id,
                                             TI.task_id == APPROVAL_TASK_ID, TI.map_index == -1)
                            .with_for_update(of=TI))
        if ti is None:
            return "absent"
        if ti.state not in (TIS.AWAITING_INPUT, TIS.RUNNING, TIS.QUEUED, TIS.SCHEDULED):
            return "done"           # finished, deferred on the trigger (which polls), or not started
        hitl = session.scalar(select(HITLDetail).where(HITLDetail.ti_id == ti.id).with_for_update(of=HITLDetail))
        if hitl is None or hitl.response_received:
            # No request yet: the sensor reads the ledger after writing it, and will see the settlement.
            return "done"
        if ti.state != TIS.AWAITING_INPUT:
            return "later"          # about to park
        parked_s = (datetime.now(UTC) - ti.updated_at).total_seconds() if ti.updated_at else PARK_GRACE_S
        if parked_s < PARK_GRACE_S:
            return "later"
        hitl.responded_by = dict(RESPONDENT)
        hitl.responded_at = datetime.now(UTC)
        hitl.chosen_options = list(OPTIONS)
        hitl.params_input = {}
        session.add(hitl)
        handle_event_submit(TriggerEvent(hitl.as_resume_event_payload()), task_instance=ti, session=session)
        return "answered"
