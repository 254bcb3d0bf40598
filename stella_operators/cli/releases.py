"""`stella release create`: cut a release through the Airflow API server, as the logged-in user."""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing

from stella_operators.cli.common import API_URL, API_USER, default_estate
from stella_operators.cli.runs import logged_in, return_value, run_link, trigger, wait_for


def cmd_release_create(args) -> int:
    """Cut a release through the Airflow API server, as the logged-in Airflow user: it triggers the
    app's release DAG, whose task records the run's triggering user as the creator. The creator is
    what separation of duties compares approvers with, so it is never a flag (as for `approve`)."""
    from stella_operators.dag_builder import release_dag_id
    from stella_operators.estate.loader import load_estate

    def usage(msg: str) -> int:
        print(f"stella: {msg}", file=sys.stderr)
        return 2

    bad = [item for item in args.refs if "=" not in item]
    if bad:
        return usage(f"give components as NAME=TAG or NAME=sha256:..., not {bad[0]!r}")
    refs = dict(item.split("=", 1) for item in args.refs)
    estate = load_estate(args.estate)
    if args.app not in {a.name for a in estate.apps}:
        return usage(f"no app {args.app!r} in {args.estate} (apps: {', '.join(a.name for a in estate.apps)})")
    comps = [c.name for c in estate.app(args.app).components]
    unknown, missing = sorted(set(refs) - set(comps)), [c for c in comps if c not in refs]
    if unknown or missing:
        return usage(f"app {args.app} has components {', '.join(comps)}"
                     + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                     + (f"; missing: {', '.join(missing)}" if missing else ""))
    dag_id = release_dag_id(args.app)
    client = logged_in(args.api_url, args.user)
    if client is None:
        return 2
    with closing(client):
        conf = {"name": args.name, **refs, "source_commit": args.commit or ""}
        run_id = trigger(client, dag_id, conf, args.user)
        if run_id is None:
            return 1
        if args.no_wait:
            print(json.dumps({"dag_id": dag_id, "run_id": run_id}))
            return 0
        state = wait_for(client, dag_id, run_id, args.timeout)
        link = run_link(args.api_url, dag_id, run_id)
        if state == "failed":
            print(f"stella: release run {run_id} failed: the create_release task log in Airflow says why ({link})",
                  file=sys.stderr)
            return 1
        if state != "success":
            print(f"stella: release run {run_id} is still {state or 'unknown'} after {args.timeout:.0f} s; "
                  f"it goes on in Airflow ({link})", file=sys.stderr)
            return 1
        value = return_value(client, dag_id, run_id, "create_release")
        if isinstance(value, str):
            value = json.loads(value)
    print(json.dumps({"dag_id": dag_id, "run_id": run_id, **(value or {})}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    r = sub.add_parser("release", help="releases").add_subparsers(dest="release_cmd", required=True)
    rc = r.add_parser("create", help="seal a release through the Airflow API server, as your Airflow login",
                      description="Triggers the app's release DAG as the logged-in Airflow user, who is recorded "
                                  "as the release's creator (separation of duties relies on it), and waits for it.")
    rc.add_argument("--estate", default=default_estate())
    rc.add_argument("--app", required=True)
    rc.add_argument("--name", required=True)
    rc.add_argument("--commit")
    rc.add_argument("--api-url", default=API_URL)
    rc.add_argument("--user", default=API_USER,
                    help="Airflow user to log in as (password from STELLA_API_PASSWORD or a prompt); "
                         "recorded as the creator")
    rc.add_argument("--timeout", type=float, default=600, help="seconds to wait for the release run")
    rc.add_argument("--no-wait", action="store_true", help="print the run id and return")
    rc.add_argument("refs", nargs="+", metavar="COMPONENT=TAG|sha256:DIGEST")
    rc.set_defaults(func=cmd_release_create)
