"""Hooks read secrets from Airflow Connections; secrets never reach logs, XCom, the ledger or evidence."""

import json
import logging
import os
import stat
import textwrap

import pytest

from stella_operators.evidence.keys import SigningKey
from stella_operators.hooks.docker_engine import engine_url
from stella_operators.hooks.ledger import LedgerHook
from stella_operators.hooks.signing import SigningKeyHook


class FakeConn:  # the shape of airflow.sdk.Connection that engine_url reads; pure URL building
    def __init__(self, host, port=None, extra=None):
        self.conn_id, self.host, self.port, self.extra_dejson = "c", host, port, extra or {}


def test_engine_url_forms():
    assert engine_url(FakeConn("10.0.0.5", 2376)) == "tcp://10.0.0.5:2376"
    assert engine_url(FakeConn("10.0.0.5")) == "tcp://10.0.0.5:2375"
    assert engine_url(FakeConn("unix:///run/docker.sock")) == "unix:///run/docker.sock"
    assert engine_url(FakeConn("", extra={"base_url": "ssh://ops@h"})) == "ssh://ops@h"
    with pytest.raises(ValueError, match="set host"):
        engine_url(FakeConn(""))


def test_signing_key_from_connection(monkeypatch):
    key = SigningKey.generate()
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY",
                       json.dumps({"conn_type": "generic", "password": key.to_pem().decode()}))
    assert SigningKeyHook().get_conn().key_id == key.key_id


def test_signing_key_defaults_to_a_private_dev_key_with_a_warning(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("AIRFLOW_CONN_STELLA_SIGNING_KEY", raising=False)
    monkeypatch.setenv("STELLA_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        first = SigningKeyHook().get_conn()
    assert "development key" in caplog.text
    path = tmp_path / "keys" / "dev-ed25519.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SigningKeyHook().get_conn().key_id == first.key_id


def test_ledger_on_postgresql_through_an_airflow_connection(monkeypatch, fresh_postgres_url):
    from sqlalchemy.engine import make_url

    url = make_url(fresh_postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({
        "conn_type": "postgres", "host": url.host, "port": url.port, "login": url.username,
        "password": url.password, "schema": url.database}))
    hook = LedgerHook()
    assert hook.url().startswith("postgresql+psycopg2://")
    ledger = hook.get_conn()
    assert ledger.engine.dialect.name == "postgresql"
    ledger.audit("test", "hook.check", "ledger", {"ok": True})
    assert ledger.verify_audit_chain() == (True, None)


@pytest.mark.root
def test_registry_password_never_reaches_logs_xcom_ledger_or_evidence(
        registry_auth, image_factory, tmp_path, monkeypatch, airflow_db, capfd, caplog):
    """A release from a registry that needs a password: the password stays in the Connection."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    secret = "ci-secret"
    digest = image_factory("private/web", "1.0.0", target=registry_auth, creds=("ci", secret))
    estate = tmp_path / "estate.yaml"
    estate.write_text(textwrap.dedent(f"""
        registries: [{{host: "{registry_auth.host_port}", scheme: http, connection: private_registry}}]
        apps:
          - name: vault
            components: [{{name: web, repository: "{registry_auth.host_port}/private/web"}}]
        environments:
          - name: dev
            targets: [{{name: vault-dev-1, type: docker, connection: c}}]
    """))
    monkeypatch.setenv("STELLA_ESTATE", str(estate))  # the shipped DAG file, pointed at this estate
    monkeypatch.setenv("AIRFLOW_CONN_PRIVATE_REGISTRY",
                       json.dumps({"conn_type": "generic", "login": "ci", "password": secret}))
    ledger_path = tmp_path / "ledger.db"
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(ledger_path)}))
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    with caplog.at_level(logging.DEBUG):
        dr = bag.get_dag("stella_release__vault").test(run_conf={"name": "vault-1", "web": "1.0.0"})
    assert dr.state == "success"
    ledger = LedgerHook().get_conn()
    rel = ledger.find_release("vault", "vault-1")
    assert rel.digests() == {"web": digest}
    out, err = capfd.readouterr()
    assert secret not in out + err + caplog.text
    with create_session() as session:
        values = session.scalars(select(XComModel.value).where(XComModel.dag_id == "stella_release__vault")).all()
    assert values and all(secret not in json.dumps(v) for v in values)
    assert secret.encode() not in ledger_path.read_bytes()
    for rec in ledger.evidence_for(release_id=rel.id):
        assert secret not in rec.to_file_json()
