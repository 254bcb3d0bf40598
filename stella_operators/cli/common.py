"""What the `stella` commands share: the estate path, the ledger, and logging in to the API server."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import TYPE_CHECKING, Any

from stella_operators.settings import estate_path

if TYPE_CHECKING:
    import httpx

    from stella_operators.ledger import Ledger

API_URL = os.environ.get("STELLA_API_URL", "http://localhost:8080")
API_USER = os.environ.get("STELLA_API_USER", os.environ.get("USER", "admin"))


def default_estate() -> str:
    return str(estate_path())


def open_ledger(args: argparse.Namespace) -> Ledger:
    from stella_operators.hooks.ledger import LedgerHook

    return LedgerHook(args.ledger_conn_id).get_conn()


def api_login(client: httpx.Client, user: str) -> str | None:
    """A JWT for `user` from the Airflow API server (password: STELLA_API_PASSWORD, else a prompt in a
    terminal). None, after one line on stderr, when there is no password or the login is refused."""
    password = os.environ.get("STELLA_API_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            print(f"stella: no password for {user}: set STELLA_API_PASSWORD or run in a terminal", file=sys.stderr)
            return None
        password = getpass.getpass(f"Airflow password for {user}: ")
    r = client.post("/auth/token", json={"username": user, "password": password})
    if r.status_code >= 400:
        print(f"stella: login as {user} failed: HTTP {r.status_code}", file=sys.stderr)
        return None
    return str(r.json()["access_token"])


def response_body(r: httpx.Response) -> dict[str, Any]:
    """The JSON object an API answer carries (a non-JSON answer becomes {"detail": its text})."""
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        return body if isinstance(body, dict) else {"detail": body}
    return {"detail": r.text[:500]}


def response_detail(r: httpx.Response) -> str:
    """What an error answer says, as one line (FastAPI's validation errors joined)."""
    detail = response_body(r).get("detail")
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail)
