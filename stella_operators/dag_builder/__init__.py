"""Generated DAGs: one release DAG per app; promote, rollback and drift DAGs per app and environment."""

from stella_operators.dag_builder.builder import (
    build_estate_dags,
    drift_dag_id,
    promote_dag_id,
    release_dag_id,
    rollback_dag_id,
)

__all__ = ["build_estate_dags", "drift_dag_id", "promote_dag_id", "release_dag_id", "rollback_dag_id"]
