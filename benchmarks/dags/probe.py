"""Probe for benchmarks/approval_latency.py: one quick task. When it runs to completion while
hundreds of promotions wait for approval, the waiting ones hold no worker slot."""

from datetime import UTC, datetime

from airflow.sdk import DAG, task

with DAG(dag_id="bench_probe", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC),
         catchup=False, tags=["benchmark"], description="one quick task (worker-slot probe)") as dag:

    @task(task_id="ping")
    def ping() -> str:
        return "pong"

    ping()
