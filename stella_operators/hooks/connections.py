"""Airflow Connection lookup shared by the hooks: a missing optional connection is None."""

from __future__ import annotations

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException


def connection_or_none(conn_id: str):
    """The Connection, or None when it is not defined (any other lookup error propagates)."""
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
