"""DockerEngineHook: a Docker Engine API client for one target host, via the Docker provider."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from stella_operators.hooks.connections import connection_or_none


def engine_url(conn) -> str:
    """`unix:///path`, `tcp://host:port` from the Connection's host/port or its extra `base_url`."""
    extra = conn.extra_dejson
    if extra.get("base_url"):
        return str(extra["base_url"])
    host = conn.host or ""
    if host.startswith(("unix://", "tcp://", "ssh://")):
        return host if not conn.port else f"{host}:{conn.port}"
    if not host:
        raise ValueError(f"connection {conn.conn_id!r}: set host (and port) of the Docker Engine, "
                         "or extra base_url like unix:///var/run/docker.sock")
    return f"tcp://{host}:{conn.port or 2375}"


class DockerEngineHook(BaseHook):
    """Docker Engine of one target host.

    :param engine_conn_id: Connection with host/port of the engine (or extra ``base_url``) and,
        optionally, extra ``tls_ca_cert``/``tls_client_cert``/``tls_client_key`` paths and
        ``registry_conn_id`` (a Docker provider connection used to log in to the registry).
    """

    conn_name_attr = "engine_conn_id"
    conn_type = "stella_docker_engine"
    hook_name = "Docker Engine (stella target)"

    def __init__(self, engine_conn_id: str, timeout: int = 60):
        super().__init__()
        self.engine_conn_id = engine_conn_id
        self.timeout = timeout

    def get_conn(self) -> Any:
        from airflow.providers.docker.hooks.docker import DockerHook

        conn = connection_or_none(self.engine_conn_id)
        if conn is None:
            raise ValueError(f"target connection {self.engine_conn_id!r} is not defined in Airflow")
        extra = conn.extra_dejson
        tls = DockerHook.construct_tls_config(
            ca_cert=extra.get("tls_ca_cert"), client_cert=extra.get("tls_client_cert"),
            client_key=extra.get("tls_client_key"))
        hook = DockerHook(docker_conn_id=extra.get("registry_conn_id"), base_url=engine_url(conn),
                          tls=tls, timeout=self.timeout, version="auto")
        return hook.get_conn()

