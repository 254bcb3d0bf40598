"""Baseline for benchmarks/approval_latency.py: Airflow's own Human-in-the-loop approval.

`approval` is Airflow's ApprovalOperator (in Airflow 3.3 it parks the task in `awaiting_input`;
bob answers through `PATCH .../taskInstances/approval/-1/hitlDetails`); `deploy` is a trivial
task that really runs in a worker (not an EmptyOperator, which the scheduler would mark done
without starting it), so its `start_date` is comparable with stella's deploy task.
"""

from datetime import UTC, datetime, timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import DAG, task

with DAG(dag_id="bench_baseline_approval", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC),
         catchup=False, max_active_runs=16, tags=["benchmark"],
         description="Airflow ApprovalOperator -> deploy (baseline of the approval latency benchmark)") as dag:

    @task(task_id="deploy")
    def deploy() -> str:
        return "deployed"

    ApprovalOperator(task_id="approval", subject="Deploy to prod?", body="benchmark run",
                     assigned_users=[{"id": "bob", "name": "bob"}],
                     response_timeout=timedelta(hours=1)) >> deploy()
