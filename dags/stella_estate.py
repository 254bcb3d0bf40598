"""The demo estate's DAGs. One DAG file per estate file: a broken estate breaks only this file."""

import os
from pathlib import Path

from airflow.sdk import DAG  # noqa: F401  (Airflow's safe-mode scan looks for "airflow" and "DAG")

from stella_operators.dag_builder import build_estate_dags

ESTATE = os.environ.get("STELLA_ESTATE", str(Path(__file__).resolve().parent.parent / "include" / "estate.yaml"))

globals().update(build_estate_dags(ESTATE))
