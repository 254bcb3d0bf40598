"""stella-operators: release orchestration for non-Kubernetes container estates on Apache Airflow 3."""

__version__ = "0.1.0"
