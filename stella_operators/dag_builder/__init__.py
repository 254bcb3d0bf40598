"""Generated DAGs: one release DAG per app, one promote DAG per app and environment."""

from stella_operators.dag_builder.builder import build_estate_dags, promote_dag_id, release_dag_id

__all__ = ["build_estate_dags", "promote_dag_id", "release_dag_id"]
