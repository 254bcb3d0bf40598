"""`stella_audit_checkpoint`: every N minutes, copy what the evidence locker lacks and sign a checkpoint
of the audit chain into it (settings.audit_checkpoint_every_min(); 0: no such DAG)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, DeltaTriggerTimetable

from stella_operators import settings
from stella_operators.operators.locker import AuditCheckpointOperator

AUDIT_CHECKPOINT_DAG_ID = "stella_audit_checkpoint"
START = datetime(2026, 1, 1, tzinfo=UTC)


def audit_checkpoint_dag(estate_path: str) -> DAG | None:
    every = settings.audit_checkpoint_every_min()
    if every <= 0:
        return None
    with DAG(dag_id=AUDIT_CHECKPOINT_DAG_ID, schedule=DeltaTriggerTimetable(timedelta(minutes=every)),
             start_date=START, catchup=False, max_active_runs=1, tags=["stella", "audit"],
             description=f"Every {every} min: copy missing evidence to the locker, sign an audit checkpoint into it",
             doc_md="Copies every recent promotion's records, stickers, lock files and deploy logs that the "
                    "evidence locker lacks, then signs the audit chain's event count and head hash into the "
                    "locker. `stella audit verify` reads the newest one to detect events cut off the end of "
                    "the chain. Fails while the locker cannot be written.") as dag:
        AuditCheckpointOperator(task_id="checkpoint", estate_path=estate_path, retries=2,
                                retry_delay=timedelta(minutes=1))
    return dag
