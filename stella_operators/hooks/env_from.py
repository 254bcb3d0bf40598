"""Resolve a component's `env_from` references through Airflow: Connections and Variables.

Called by a target at deploy time, in the deploy task (`airflow.sdk` Connection / Variable, so
any secrets backend configured in Airflow works). Every value read is registered with Airflow's
secrets masker, so that a task log line that would carry it shows *** instead. Errors name the
reference, never a value.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk import Connection, Variable
from airflow.sdk.log import mask_secret

from stella_operators.targets.runtime import EnvFrom


class EnvFromError(LookupError):
    """The reference cannot be resolved (undefined, or the field is empty)."""


def _connection_field(conn: Any, field: str) -> Any:
    if field == "uri":
        return conn.get_uri()
    if field.startswith("extra."):
        extra = conn.extra_dejson or {}
        return extra.get(field.removeprefix("extra."))
    return getattr(conn, field, None)


def resolve_env_from(ref: EnvFrom) -> str:
    """The value `ref` names, as a string (JSON for a non-string extra value)."""
    try:
        if ref.variable is not None:
            value: Any = Variable.get(ref.variable)
        else:
            assert ref.connection is not None and ref.field is not None  # EnvFrom's validator
            value = _connection_field(Connection.get(ref.connection), ref.field)
    except Exception as exc:  # noqa: BLE001 - not found, access denied, backend down
        raise EnvFromError(f"{ref.describe()} is not available ({type(exc).__name__}); define it in "
                           f"Airflow (UI, CLI or a secrets backend)") from None
    if value is None or value == "":
        raise EnvFromError(f"{ref.describe()} is empty; set it in Airflow")
    text = value if isinstance(value, str) else json.dumps(value) if not isinstance(value, int) else str(value)
    mask_secret(text)
    return text
