"""What a finished `dag.test()` run left in Airflow's metadata DB, for the scenario tests."""

from __future__ import annotations

from typing import Any


def ti_states(dr: Any) -> dict[str, str]:
    """Task id -> state of every task instance of the run."""
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def return_value(dr: Any, task_id: str) -> Any:
    """The task's XCom return value in this run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(XComModel.value).where(XComModel.dag_id == dr.dag_id,
                                                            XComModel.run_id == dr.run_id,
                                                            XComModel.task_id == task_id,
                                                            XComModel.key == "return_value"))
