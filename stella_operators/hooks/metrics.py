"""MetricsEndpointHook: where a metric provider (Prometheus, HTTP/JSON) is reached, from an Airflow Connection."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from stella_operators.analysis.providers import Endpoint

PROMETHEUS_CONN_ID = "stella_prometheus"


def endpoint_from(conn: Any) -> Endpoint:
    """An Endpoint from a Connection: host (or a full URL in host), port, schema (http/https),
    login + password (Basic auth) or a password alone (Bearer token); extra ``headers`` (dict),
    ``base_path``, ``timeout_s`` and ``verify_tls``."""
    extra = conn.extra_dejson or {}
    host = (conn.host or "").rstrip("/")
    if not host:
        raise ValueError(f"connection {conn.conn_id!r}: set host (e.g. prometheus.internal, or http://host:9090)")
    if "://" not in host:
        scheme = conn.schema or "http"
        if scheme not in ("http", "https"):
            raise ValueError(f"connection {conn.conn_id!r}: schema is http or https, not {scheme!r}")
        host = f"{scheme}://{host}"
    if conn.port:
        host = f"{host}:{conn.port}"
    base_path = str(extra.get("base_path", "")).strip("/")
    headers = extra.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError(f"connection {conn.conn_id!r}: extra headers must be an object of name -> value")
    headers = {str(k): str(v) for k, v in headers.items()}
    auth = None
    if conn.login:
        auth = (conn.login, conn.password or "")
    elif conn.password:
        headers.setdefault("Authorization", f"Bearer {conn.password}")
    try:
        timeout_s = float(extra.get("timeout_s", 10.0))
    except (TypeError, ValueError):
        raise ValueError(f"connection {conn.conn_id!r}: extra timeout_s must be a number of seconds") from None
    return Endpoint(base_url=host + ("/" + base_path if base_path else ""), auth=auth, headers=headers,
                    timeout_s=timeout_s, verify_tls=bool(extra.get("verify_tls", True)))


class MetricsEndpointHook(BaseHook):
    """The endpoint of a metric provider.

    :param conn_id: Connection (type ``stella_metrics``) of a Prometheus server (default
        ``stella_prometheus``) or of an HTTP/JSON metrics service.
    :param required: a missing Connection is an error (else ``None``: http_json metrics may use
        absolute URLs without credentials).
    """

    conn_name_attr = "conn_id"
    default_conn_name = PROMETHEUS_CONN_ID
    conn_type = "stella_metrics"
    hook_name = "Metrics provider (stella analysis)"

    def __init__(self, conn_id: str = PROMETHEUS_CONN_ID, required: bool = True):
        super().__init__()
        self.conn_id = conn_id
        self.required = required

    def _missing(self) -> None:
        if self.required:
            raise ValueError(f"Airflow Connection {self.conn_id!r} (metrics provider) is not defined: "
                             "add it with host/port of the server (see MetricsEndpointHook)")

    def get_conn(self) -> Endpoint | None:
        try:
            return endpoint_from(self.get_connection(self.conn_id))
        except AirflowNotFoundException:
            self._missing()
            return None

    async def aget_conn(self) -> Endpoint | None:
        """The same, without blocking the triggerer's event loop."""
        try:
            return endpoint_from(await self.aget_connection(self.conn_id))
        except AirflowNotFoundException:
            self._missing()
            return None
