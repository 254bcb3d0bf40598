"""The stella REST API and pages, served by Airflow's API server (same authentication as Airflow)."""
