"""Where stella-operators keeps its things: connection ids and the local state folder.

Read from the environment (``STELLA_*``) so the CLI, the DAG files and the tasks agree
without importing Airflow's configuration at DAG-parse time.
"""

from __future__ import annotations

import os
from pathlib import Path

LEDGER_CONN_ID = "stella_ledger"
SIGNING_KEY_CONN_ID = "stella_signing_key"


def airflow_home() -> Path:
    return Path(os.environ.get("AIRFLOW_HOME") or str(Path.home() / "airflow"))


def estate_path() -> Path:
    """The estate file: `STELLA_ESTATE`, else `include/estate.yaml` beside the DAGs folder.

    The one resolution used by the DAG files, the API server, the pages and the CLI. The DAGs
    folder is `AIRFLOW__CORE__DAGS_FOLDER`, else `$AIRFLOW_HOME/dags` (Airflow's own default), so
    the default is `<project>/include/estate.yaml` in the layout Airflow images and Astro projects
    share (dags/, plugins/, include/ side by side). A dags_folder set only in airflow.cfg is not
    read here (no Airflow import at parse time): set `STELLA_ESTATE` then.
    """
    explicit = os.environ.get("STELLA_ESTATE")
    if explicit:
        return Path(explicit)
    dags = os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or str(airflow_home() / "dags")
    return Path(dags).parent / "include" / "estate.yaml"


def stella_home() -> Path:
    """Local state: the default SQLite ledger, the development signing key, trusted keys, artifacts."""
    explicit = os.environ.get("STELLA_HOME")
    if explicit:
        return Path(explicit)
    return airflow_home() / "stella"


def ledger_conn_id() -> str:
    return os.environ.get("STELLA_LEDGER_CONN_ID", LEDGER_CONN_ID)


def signing_key_conn_id() -> str:
    return os.environ.get("STELLA_SIGNING_KEY_CONN_ID", SIGNING_KEY_CONN_ID)


def default_ledger_url() -> str:
    """`STELLA_LEDGER_URL`, else a SQLite file under `stella_home()`."""
    return os.environ.get("STELLA_LEDGER_URL") or f"sqlite:///{stella_home() / 'ledger.db'}"


def estate_cache_dir() -> Path:
    """Parsed estate files (JSON, keyed by path and content hash) for fast task starts."""
    return stella_home() / "cache"


def dev_key_path() -> Path:
    return stella_home() / "keys" / "dev-ed25519.pem"


def locker_url() -> str:
    """The evidence locker's base: `STELLA_LOCKER_URL` (`s3://bucket/prefix` in production), else a
    local folder `file://$STELLA_HOME/locker`."""
    return os.environ.get("STELLA_LOCKER_URL") or (stella_home() / "locker").resolve().as_uri()


def locker_conn_id() -> str | None:
    """The Airflow Connection with the locker's credentials and endpoint (`STELLA_LOCKER_CONN_ID`,
    e.g. an `aws` Connection for S3); none for a local folder."""
    return os.environ.get("STELLA_LOCKER_CONN_ID") or None


def locker_retention() -> str:
    """Retention per locker index kind, `STELLA_LOCKER_RETENTION` (e.g. `promotion=forever,checkpoint=90d`)."""
    return os.environ.get("STELLA_LOCKER_RETENTION", "")


def audit_checkpoint_every_min() -> int:
    """Minutes between signed audit checkpoints written to the locker by the `stella_audit_checkpoint`
    DAG (`STELLA_AUDIT_CHECKPOINT_EVERY_MIN`, default 60; 0: no such DAG)."""
    raw = os.environ.get("STELLA_AUDIT_CHECKPOINT_EVERY_MIN", "60").strip()
    if not raw.isdigit():
        raise ValueError(f"STELLA_AUDIT_CHECKPOINT_EVERY_MIN={raw!r}: expected a whole number of minutes (0: off)")
    return int(raw)
