"""The Airflow plugin: kept small; it registers what Airflow needs to find (listeners, views later)."""

from airflow.plugins_manager import AirflowPlugin


class StellaPlugin(AirflowPlugin):
    name = "stella_operators"
