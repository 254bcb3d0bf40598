"""MetricsEndpointHook: a Connection's fields become the provider Endpoint (URL, auth, headers)."""

from __future__ import annotations

import pytest

from stella_operators.hooks.metrics import endpoint_from


class Conn:  # the fields of airflow.sdk.Connection that endpoint_from reads
    def __init__(self, host, port=None, schema=None, login=None, password=None, extra=None):
        self.conn_id, self.host, self.port, self.schema = "stella_prometheus", host, port, schema
        self.login, self.password, self.extra_dejson = login, password, extra or {}


def test_host_port_schema_and_basic_auth():
    ep = endpoint_from(Conn("prom.internal", 9090, "https", "reader", "pw", {"base_path": "/prom/", "timeout_s": 3}))
    assert (ep.base_url, ep.auth, ep.timeout_s) == ("https://prom.internal:9090/prom", ("reader", "pw"), 3.0)
    assert "pw" not in repr(ep)


def test_full_url_in_host_bearer_token_and_headers():
    ep = endpoint_from(Conn("http://127.0.0.1:9090/", password="tok", extra={"headers": {"X-Scope-OrgID": "a"}}))
    assert ep.base_url == "http://127.0.0.1:9090" and ep.auth is None
    assert ep.headers == {"X-Scope-OrgID": "a", "Authorization": "Bearer tok"}


@pytest.mark.parametrize("conn, message", [
    (Conn(""), "set host"),
    (Conn("h", schema="ftp"), "schema is http or https"),
    (Conn("h", extra={"headers": ["a"]}), "headers must be an object"),
    (Conn("h", extra={"timeout_s": "soon"}), "timeout_s must be a number"),
])
def test_bad_connections_say_what_to_fix(conn, message):
    with pytest.raises(ValueError, match=message):
        endpoint_from(conn)
