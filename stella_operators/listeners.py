"""Airflow listener: what a person does by hand to a promotion's tasks becomes an audit event.

Airflow 3.3 calls `on_task_instance_success / failed / skipped` in the API server when a person
marks a task instance (or a whole run, for its running tasks) through the UI or REST API, with
`previous_state=None` and the ORM TaskInstance; a task that ran calls them on its worker with its
previous state and a RuntimeTaskInstance. Only the first kind is recorded. Who did it comes from
Airflow's own audit log row of the same request (`log` table: event `patch_*`, owner), read in
the request's session. Clearing or deleting a run calls no listener: our steps are safe to re-run
(they return recorded outcomes), and the ledger outlives deleted runs.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)
PREFIXES = ("stella_promote__", "stella_rollback__")


def _by_hand(previous_state: Any, task_instance: Any) -> bool:
    return previous_state is None and type(task_instance).__module__.startswith("airflow.models")


def _who(task_instance: Any) -> str:
    """The user of the request that changed the state (Airflow's audit log row), else 'unknown'."""
    from airflow.models.log import Log
    from sqlalchemy import select
    from sqlalchemy.orm import object_session

    session = object_session(task_instance)
    if session is None:
        return "unknown"
    row = session.execute(
        select(Log.owner).where(Log.dag_id == task_instance.dag_id, Log.run_id == task_instance.run_id,
                                Log.event.like("patch%")).order_by(Log.id.desc()).limit(1)).scalar_one_or_none()
    return row or "unknown"


def _record(previous_state: Any, task_instance: Any, state: str) -> None:
    if not _by_hand(previous_state, task_instance) or not str(task_instance.dag_id).startswith(PREFIXES):
        return
    try:
        from stella_operators.hooks.ledger import LedgerHook
        from stella_operators.promotion.overrides import record_manual_change

        ledger = LedgerHook().get_conn()
        promo = ledger.find_promotion_by_run(task_instance.dag_id, task_instance.run_id)
        if promo is None:
            return  # the run never reached its request step: nothing in the ledger to flag
        record_manual_change(ledger, promo.id, by=_who(task_instance), dag_id=task_instance.dag_id,
                             run_id=task_instance.run_id, task_id=task_instance.task_id, state=state)
    except Exception:  # a listener must never break the person's request; say so loudly instead
        log.exception("stella: could not record the manual change of %s.%s", task_instance.dag_id,
                      task_instance.task_id)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _record(previous_state, task_instance, "success")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    _record(previous_state, task_instance, "failed")


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    _record(previous_state, task_instance, "skipped")
