"""WinrmHook: a pywinrm Session for one Windows host, from an Airflow Connection."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from stella_operators.hooks.connections import connection_or_none


class WinrmHook(BaseHook):
    """WS-Management endpoint of one Windows host.

    :param winrm_conn_id: Connection with host, port (5985 http / 5986 https), login and password;
        schema ``https`` (default) or ``http``; extra ``transport`` (ntlm default, kerberos,
        credssp, basic) and ``server_cert_validation`` (validate default, ignore).
    """

    conn_name_attr = "winrm_conn_id"
    conn_type = "stella_winrm"
    hook_name = "WinRM (stella target)"

    def __init__(self, winrm_conn_id: str, *, timeout_s: float = 300):
        super().__init__()
        self.winrm_conn_id = winrm_conn_id
        self.timeout_s = timeout_s

    def get_conn(self) -> Any:
        import winrm  # the [winrm] extra

        conn = connection_or_none(self.winrm_conn_id)
        if conn is None:
            raise ValueError(f"target connection {self.winrm_conn_id!r} is not defined in Airflow")
        if not conn.host:
            raise ValueError(f"connection {self.winrm_conn_id!r}: set host (and port) of the Windows host")
        extra = conn.extra_dejson
        scheme = conn.schema or "https"
        port = conn.port or (5986 if scheme == "https" else 5985)
        timeout = int(self.timeout_s)
        return winrm.Session(f"{scheme}://{conn.host}:{port}/wsman", auth=(conn.login or "", conn.password or ""),
                             transport=extra.get("transport", "ntlm"),
                             server_cert_validation=extra.get("server_cert_validation", "validate"),
                             operation_timeout_sec=timeout, read_timeout_sec=timeout + 10)
