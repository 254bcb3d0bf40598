"""Trigger a DAG run through the Airflow API server as the logged-in user, and follow it.

The triggering user is who the run records (`triggering_user_name`): the release's creator, the
promotion's requester. Separation of duties relies on it, so it is never a flag: it is the login.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from stella_operators.cli.common import api_login, response_detail


def logged_in(api_url: str, user: str) -> httpx.Client | None:
    """An API client with `user`'s JWT (None, after one line on stderr, when the login fails)."""
    client = httpx.Client(base_url=api_url.rstrip("/"), timeout=30)
    token = api_login(client, user)
    if token is None:
        client.close()
        return None
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def trigger(client: httpx.Client, dag_id: str, conf: dict[str, Any], user: str) -> str | None:
    """The new run's id; None after one line on stderr when the API refuses (403, 400 bad params)."""
    r = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    if r.status_code >= 400:
        print(f"refused (HTTP {r.status_code}): {response_detail(r)}", file=sys.stderr)
        return None
    run_id = str(r.json()["dag_run_id"])
    print(f"triggered {dag_id} run {run_id} as {user}", file=sys.stderr)
    return run_id


def wait_for(client: httpx.Client, dag_id: str, run_id: str, timeout_s: float, *,
             task_id: str | None = None) -> str | None:
    """Poll until the run (or one of its tasks) ends; its last state (None: unknown)."""
    url = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}" + (f"/taskInstances/{task_id}" if task_id else "")
    ended = ("success", "failed", "skipped", "upstream_failed", "removed") if task_id else ("success", "failed")
    deadline = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < deadline:
        state = client.get(url).json().get("state")
        if state in ended:
            return str(state)
        time.sleep(1)
    return state


def return_value(client: httpx.Client, dag_id: str, run_id: str, task_id: str) -> Any:
    r = client.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
                   params={"deserialize": True})
    return r.json().get("value") if r.status_code < 400 else None


def run_link(api_url: str, dag_id: str, run_id: str) -> str:
    return f"{api_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}"
