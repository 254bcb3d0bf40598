"""NomadHook: a python-nomad client for one Nomad agent, from an Airflow Connection."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from stella_operators.hooks.connections import connection_or_none


class NomadHook(BaseHook):
    """Nomad HTTP API of one cluster.

    :param nomad_conn_id: Connection with host and port (default 4646) of a Nomad agent; schema
        ``https`` for TLS; the password is the ACL token (sent as X-Nomad-Token, never logged);
        extra ``verify`` (CA bundle path or false) and ``timeout`` (seconds).
    """

    conn_name_attr = "nomad_conn_id"
    conn_type = "stella_nomad"
    hook_name = "Nomad (stella target)"

    def __init__(self, nomad_conn_id: str, *, namespace: str | None = None, region: str | None = None):
        super().__init__()
        self.nomad_conn_id = nomad_conn_id
        self.namespace = namespace
        self.region = region

    def get_conn(self) -> Any:
        import nomad  # type: ignore[import-untyped]  # the [nomad] extra, untyped

        conn = connection_or_none(self.nomad_conn_id)
        if conn is None:
            raise ValueError(f"target connection {self.nomad_conn_id!r} is not defined in Airflow")
        if not conn.host:
            raise ValueError(f"connection {self.nomad_conn_id!r}: set host (and port) of a Nomad agent")
        extra = conn.extra_dejson
        return nomad.Nomad(host=conn.host, port=conn.port or 4646, secure=(conn.schema or "http") == "https",
                           token=conn.password or None, namespace=self.namespace, region=self.region,
                           timeout=int(extra.get("timeout", 10)), verify=extra.get("verify", True))
