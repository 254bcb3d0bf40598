"""env_from references resolved through Airflow's own Connections and Variables (real airflow.sdk,
defined the way a deployment defines them: AIRFLOW_CONN_* / AIRFLOW_VAR_* or a secrets backend)."""

from __future__ import annotations

import json

import pytest

from stella_operators.hooks.env_from import EnvFromError, resolve_env_from
from stella_operators.targets.runtime import EnvFrom

PASSWORD = "pw-env-from-4711"


@pytest.fixture
def airflow_secrets(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", json.dumps({
        "conn_type": "postgres", "login": "shop", "password": PASSWORD, "host": "db.internal", "port": 5432,
        "extra": {"sslmode": "verify-full"}}))
    monkeypatch.setenv("AIRFLOW_VAR_SHOP_API_KEY", "api-key-0815")


def test_connection_fields_and_variables_resolve(airflow_secrets):
    assert resolve_env_from(EnvFrom(connection="shop_db", field="password")) == PASSWORD
    assert resolve_env_from(EnvFrom(connection="shop_db", field="login")) == "shop"
    assert resolve_env_from(EnvFrom(connection="shop_db", field="port")) == "5432"
    assert resolve_env_from(EnvFrom(connection="shop_db", field="extra.sslmode")) == "verify-full"
    assert resolve_env_from(EnvFrom(connection="shop_db", field="uri")).startswith("postgres://shop:")
    assert resolve_env_from(EnvFrom(variable="shop_api_key")) == "api-key-0815"


def test_resolved_values_are_masked_in_airflow_logs(airflow_secrets):
    from airflow.sdk._shared.secrets_masker import redact

    value = resolve_env_from(EnvFrom(variable="shop_api_key"))
    assert redact(f"starting with {value}") == "starting with ***"


def test_undefined_or_empty_references_name_the_reference_and_the_fix(airflow_secrets):
    with pytest.raises(EnvFromError, match=r"Airflow Variable 'nope' is not available .*define it in Airflow"):
        resolve_env_from(EnvFrom(variable="nope"))
    with pytest.raises(EnvFromError, match=r"field 'login' of Airflow Connection 'other' is not available"):
        resolve_env_from(EnvFrom(connection="other", field="login"))
    with pytest.raises(EnvFromError, match=r"field 'extra.missing' of Airflow Connection 'shop_db' is empty"):
        resolve_env_from(EnvFrom(connection="shop_db", field="extra.missing"))
