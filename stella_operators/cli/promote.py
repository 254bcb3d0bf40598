"""`stella promote APP ENV --release NAME --reason TEXT`: request a promotion through the Airflow
API server, as the logged-in user (recorded as the requester: separation of duties relies on it).

stdout: one JSON object {dag_id, run_id, promotion_id, state}; notes on stderr. Exit 0 when the
promotion was requested (and, with --wait, when it ended deployed), 1 when it was refused or ended
otherwise (`stella why PROMOTION` says why), 2 for usage and login errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import closing

from stella_operators.cli.common import API_URL, API_USER, default_estate
from stella_operators.cli.runs import logged_in, return_value, run_link, trigger, wait_for


def cmd_promote(args: argparse.Namespace) -> int:
    from stella_operators.dag_builder import promote_dag_id
    from stella_operators.estate.loader import load_estate

    def usage(msg: str) -> int:
        print(f"stella: {msg}", file=sys.stderr)
        return 2

    if not args.reason.strip():
        return usage("say why: --reason TEXT (white space alone is refused)")
    estate = load_estate(args.estate)
    if args.app not in {a.name for a in estate.apps}:
        return usage(f"no app {args.app!r} in {args.estate} (apps: {', '.join(a.name for a in estate.apps)})")
    envs = [e.name for e in estate.app_environments(args.app)]
    if args.environment not in envs:
        return usage(f"app {args.app} is not promoted into {args.environment!r} (its environments: {', '.join(envs)})")
    dag_id = promote_dag_id(args.app, args.environment)
    client = logged_in(args.api_url, args.user)
    if client is None:
        return 2
    with closing(client):
        conf = {"release": args.release, "reason": args.reason,
                "freeze_override_reason": args.freeze_override_reason or None}
        run_id = trigger(client, dag_id, conf, args.user)
        if run_id is None:
            return 1
        link = run_link(args.api_url, dag_id, run_id)
        requested = wait_for(client, dag_id, run_id, args.timeout, task_id="request")
        if requested != "success":
            print(f"stella: the promotion was not requested (request task {requested or 'still waiting'}); its log "
                  f"says why ({link})", file=sys.stderr)
            return 1
        promotion_id = return_value(client, dag_id, run_id, "request")
        state = "requested"
        if args.wait:
            state = wait_for(client, dag_id, run_id, args.timeout) or "unknown"
        print(json.dumps({"dag_id": dag_id, "run_id": run_id, "promotion_id": promotion_id, "state": state}))
    if args.wait and state != "success":
        print(f"stella: promotion {promotion_id} run ended {state}: `stella why {promotion_id}` says why ({link})",
              file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("promote", help="request a promotion through the Airflow API server, as your Airflow login",
                       description="Triggers the environment's promote DAG as the logged-in Airflow user, who is "
                                   "recorded as the requester (and so may not approve it).")
    p.add_argument("app")
    p.add_argument("environment")
    p.add_argument("--release", required=True, help="release name (e.g. shop-2.3.1) or id")
    p.add_argument("--reason", required=True, help="why; goes into the evidence")
    p.add_argument("--freeze-override-reason", help="only for a named overrider of an active freeze window")
    p.add_argument("--wait", action="store_true", help="wait until the promotion run ends (approvals included)")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait (for the request, or with --wait)")
    p.add_argument("--estate", default=default_estate())
    p.add_argument("--api-url", default=API_URL)
    p.add_argument("--user", default=API_USER, help="Airflow user to log in as (password from STELLA_API_PASSWORD "
                                                    "or a prompt); recorded as the requester")
    p.set_defaults(func=cmd_promote)
