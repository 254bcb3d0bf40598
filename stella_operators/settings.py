"""Where stella-operators keeps its things: connection ids and the local state folder.

Read from the environment (``STELLA_*``) so the CLI, the DAG files and the tasks agree
without importing Airflow's configuration at DAG-parse time.
"""

from __future__ import annotations

import os
from pathlib import Path

LEDGER_CONN_ID = "stella_ledger"
SIGNING_KEY_CONN_ID = "stella_signing_key"


def stella_home() -> Path:
    """Local state: the default SQLite ledger, the development signing key, trusted keys, artifacts."""
    explicit = os.environ.get("STELLA_HOME")
    if explicit:
        return Path(explicit)
    airflow_home = os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow")
    return Path(airflow_home) / "stella"


def ledger_conn_id() -> str:
    return os.environ.get("STELLA_LEDGER_CONN_ID", LEDGER_CONN_ID)


def signing_key_conn_id() -> str:
    return os.environ.get("STELLA_SIGNING_KEY_CONN_ID", SIGNING_KEY_CONN_ID)


def default_ledger_url() -> str:
    """`STELLA_LEDGER_URL`, else a SQLite file under `stella_home()`."""
    return os.environ.get("STELLA_LEDGER_URL") or f"sqlite:///{stella_home() / 'ledger.db'}"


def dev_key_path() -> Path:
    return stella_home() / "keys" / "dev-ed25519.pem"
