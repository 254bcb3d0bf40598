"""Hooks: connections and transport only; secrets come from Airflow Connections."""
