"""`stella`: validate estates, cut releases, approve, explain and replay decisions, verify evidence.

Exit codes: 0 ok, 1 the thing checked is bad (invalid estate, evidence that does not verify,
a refused release), 2 usage or environment errors. Errors are one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stella_operators.api.sentences import refusal_sentence
from stella_operators.estate.errors import EstateError
from stella_operators.settings import estate_path

if TYPE_CHECKING:
    from stella_operators.ledger import Ledger


def _default_estate() -> str:
    return str(estate_path())


def cmd_validate(args) -> int:
    from stella_operators.estate.loader import load_estate

    estate = load_estate(args.file)
    targets = sum(len(e.targets) for e in estate.environments)
    print(f"{args.file}: ok ({len(estate.apps)} apps, {len(estate.environments)} environments, {targets} targets)")
    return 0


def cmd_schema(args) -> int:
    from stella_operators.estate.schema import estate_json_schema

    text = json.dumps(estate_json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_target_types(args) -> int:
    """Installed target types (entry point group `stella_operators.targets`): one name per line."""
    from stella_operators.entry_points import stella_entry_points
    from stella_operators.estate.checks import TARGET_TYPES_GROUP

    eps = sorted(stella_entry_points(TARGET_TYPES_GROUP), key=lambda ep: ep.name)
    if args.json:
        rows = [{"name": ep.name, "object": ep.value, "distribution": ep.dist.name if ep.dist else None,
                 "version": ep.dist.version if ep.dist else None} for ep in eps]
        print(json.dumps(rows, indent=2))
    else:
        for ep in eps:
            print(ep.name)
    return 0


def cmd_dags_render(args) -> int:
    from stella_operators.dag_builder.render import render_dag_files, shard_count
    from stella_operators.estate.loader import load_estate

    estate = load_estate(args.estate)  # never render files for an estate that does not validate
    shards = args.shards or shard_count(len(estate.apps), args.apps_per_file)
    written, removed = render_dag_files(args.output, shards)
    for f in removed:
        print(f"removed {f}")
    for f in written:
        print(f"wrote {f}")
    print(f"{len(estate.apps)} apps in {shards} DAG file(s); they read the estate from STELLA_ESTATE "
          f"(now resolving to {estate_path()})")
    return 0


def _ledger(args: argparse.Namespace) -> Ledger:
    from stella_operators.hooks.ledger import LedgerHook

    return LedgerHook(args.ledger_conn_id).get_conn()


def _api_login(client, user: str) -> str | None:
    """A JWT for `user` from the Airflow API server (password: STELLA_API_PASSWORD or a prompt)."""
    import getpass

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
    return r.json()["access_token"]


def cmd_release_create(args) -> int:
    """Cut a release through the Airflow API server, as the logged-in Airflow user: it triggers the
    app's release DAG, whose task records the run's triggering user as the creator. The creator is
    what separation of duties compares approvers with, so it is never a flag (as for `approve`)."""
    import time

    import httpx

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
    with httpx.Client(base_url=args.api_url.rstrip("/"), timeout=30) as client:
        token = _api_login(client, args.user)
        if token is None:
            return 2
        client.headers["Authorization"] = f"Bearer {token}"
        conf = {"name": args.name, **refs, "source_commit": args.commit or ""}
        r = client.post(f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        if r.status_code >= 400:
            print(f"refused (HTTP {r.status_code}): {_detail(r)}", file=sys.stderr)
            return 1
        run_id = r.json()["dag_run_id"]
        print(f"triggered {dag_id} run {run_id} as {args.user}", file=sys.stderr)
        if args.no_wait:
            print(json.dumps({"dag_id": dag_id, "run_id": run_id}))
            return 0
        run_url = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        deadline = time.monotonic() + args.timeout
        state = None
        while time.monotonic() < deadline:
            state = client.get(run_url).json().get("state")
            if state in ("success", "failed"):
                break
            time.sleep(1)
        if state == "failed":
            print(f"stella: release run {run_id} failed: the create_release task log in Airflow says why "
                  f"({args.api_url.rstrip('/')}/dags/{dag_id}/runs/{run_id})", file=sys.stderr)
            return 1
        if state != "success":
            print(f"stella: release run {run_id} is still {state or 'unknown'} after {args.timeout:.0f} s; "
                  f"it goes on in Airflow ({args.api_url.rstrip('/')}/dags/{dag_id}/runs/{run_id})", file=sys.stderr)
            return 1
        r = client.get(f"{run_url}/taskInstances/create_release/xcomEntries/return_value", params={"deserialize": True})
        value = r.json().get("value") if r.status_code < 400 else None
        if isinstance(value, str):
            value = json.loads(value)
    print(json.dumps({"dag_id": dag_id, "run_id": run_id, **(value or {})}, indent=2))
    return 0


def cmd_status(args) -> int:
    """Per app and environment the verified release, then each target's own last result; an
    environment whose hosts disagree is marked DEGRADED with the reason (as on the Releases page)."""
    from stella_operators.api.views import TARGET_HISTORY, environment_cell
    from stella_operators.estate.loader import load_estate

    estate = load_estate(args.estate)
    ledger = _ledger(args)
    recent = ledger.recent_promotions(TARGET_HISTORY)
    for app in estate.apps:
        for env in estate.app_environments(app.name):
            cell = environment_cell(estate, ledger, app.name, env.name, recent)
            if cell is None:
                print(f"{app.name:20} {env.name:12} -")
                continue
            shown = (f"{cell['name']} ({cell['release_id']}) " + " ".join(c["ref"] for c in cell["components"])
                     if cell["name"] else "no verified release")
            if cell["degraded"]:
                shown += "  DEGRADED: " + "; ".join(cell["problems"])
            print(f"{app.name:20} {env.name:12} {shown}")
            for t in cell["targets"]:
                if t["result"] is None:
                    print(f"{'':20}   {t['target']:12} nothing deployed yet")
                    continue
                runs = "runs nothing" if t.get("runs_nothing") else (t["release"] or "other digests")
                print(f"{'':20}   {t['target']:12} {runs}, last result {t['result']} at {t['at']}")
    return 0


def _trust_store(args):
    """The keys `evidence verify` trusts: --trust/--public-key paths, else the configured trust store,
    else (only when asked) the ledger's registered keys. Never the ledger's keys silently."""
    from stella_operators.evidence.trust import TrustStore, load_trust_store
    from stella_operators.hooks.trust import TrustStoreHook

    paths = [*(args.trust or []), *(args.public_key or [])]
    if paths:
        return load_trust_store(paths, source="--trust " + " ".join(map(str, paths)))
    if args.trust_ledger_keys:
        print("stella: WARNING: --trust-ledger-keys trusts every key registered in the ledger; any key that "
              "ever signed a stored record registered itself there, so a forged record signed with such a "
              "key verifies ok. Use it only to inspect a ledger, never as proof.", file=sys.stderr)
        return TrustStore(keys=_ledger(args).registered_keys(), source="the ledger's registered keys (untrusted)")
    return TrustStoreHook().get_conn()


def cmd_evidence_verify(args) -> int:
    """Verify each ref (ledger id or exported file) against the trust store; 1 if any fails."""
    from stella_operators.evidence.envelope import verify_evidence
    from stella_operators.evidence.trust import TrustStoreError
    from stella_operators.ledger import NotFound

    try:
        store = _trust_store(args)
    except TrustStoreError as exc:
        print(f"stella: cannot verify: {exc}", file=sys.stderr)
        return 2
    ledger = None
    bad = 0
    for ref in args.refs:
        if Path(ref).exists():
            text = Path(ref).read_text()
        else:
            ledger = ledger or _ledger(args)
            try:
                text = ledger.get_evidence(ref).to_file_json()
            except NotFound:
                print(f"MISSING: {ref}: no such evidence in the ledger")
                bad += 1
                continue
        result = verify_evidence(text, store.keys)
        if result.ok:
            print(f"ok: {ref} (key {result.key_id}, trusted by {store.source})")
        elif result.key_id is not None and result.key_id not in store:
            print(f"INVALID: {ref}: untrusted key {result.key_id}: not in the trust store ({store.source})")
            bad += 1
        else:
            print(f"INVALID: {ref}: {result.reason}")
            bad += 1
    return 1 if bad else 0


def cmd_evidence_public_key(args) -> int:
    """The public half of the configured signing key, for a trust store."""
    from stella_operators.hooks.signing import SigningKeyHook

    key = SigningKeyHook().get_conn()
    text = key.public_pem().decode("ascii")
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} ({key.key_id})")
    else:
        sys.stdout.write(text)
    return 0


def cmd_evidence_keygen(args) -> int:
    """A new Ed25519 signing key (mode 0600) and its public key (for the trust store)."""
    from stella_operators.evidence.keys import load_or_create_dev_key

    if Path(args.key).exists():
        print(f"stella: {args.key} exists; not overwriting a signing key", file=sys.stderr)
        return 2
    key = load_or_create_dev_key(args.key)
    Path(args.public).parent.mkdir(parents=True, exist_ok=True)
    Path(args.public).write_bytes(key.public_pem())
    print(f"signing key {args.key} ({key.key_id}); public key {args.public}")
    return 0


def cmd_evidence_export(args) -> int:
    record = _ledger(args).get_evidence(args.id)  # NotFound -> one-line error, exit 2
    Path(args.output).write_text(record.to_file_json())
    print(f"wrote {args.output}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the hash-chained audit log (and check it against signed checkpoints): one line per
    changed, removed, inserted, reordered or cut event, exit 1; else one ok line, exit 0."""
    from stella_operators.evidence.trust import TrustStoreError
    from stella_operators.ledger.audit_checkpoint import (
        CheckpointError,
        check_checkpoint,
        read_checkpoint,
    )
    from stella_operators.ledger.audit_verify import report_lines, verify_audit_rows

    rows = _ledger(args).audit_events()
    report = verify_audit_rows(rows)
    lines = [p.line() for p in report.problems]
    if args.checkpoint:
        try:
            store = _trust_store(args)
        except TrustStoreError as exc:
            print(f"stella: cannot verify checkpoints: {exc}", file=sys.stderr)
            return 2
        for path in args.checkpoint:
            try:
                checkpoint = read_checkpoint(Path(path).read_bytes(), store.keys)
            except CheckpointError as exc:
                lines.append(f"INVALID: checkpoint {path}: {exc}")
                continue
            lines += [p.line() for p in check_checkpoint(rows, checkpoint)]
    if lines:
        print("\n".join(lines))
        return 1
    held = f"; {len(args.checkpoint)} checkpoint(s) hold" if args.checkpoint else ""
    print(report_lines(report)[0] + held)
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    """Sign (event count, head hash) with the configured key into a file kept outside the database."""
    from datetime import UTC, datetime

    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger.audit_checkpoint import make_checkpoint

    out = Path(args.output)
    if out.exists():
        print(f"stella: {out} exists; checkpoints are records, never overwritten", file=sys.stderr)
        return 2
    rows = _ledger(args).audit_events()
    key = SigningKeyHook().get_conn()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(make_checkpoint(rows, key, datetime.now(UTC)))
    head = rows[-1].hash if rows else "none"
    print(f"wrote {out}: {len(rows)} events, head {head}, signed by {key.key_id}")
    return 0


def cmd_why(args) -> int:
    from stella_operators.api.views import why_sentences
    from stella_operators.estate.loader import load_estate
    from stella_operators.promotion.why import explain_promotion

    estate, ledger = load_estate(args.estate), _ledger(args)
    out = explain_promotion(estate, ledger, args.promotion)
    lines = out["text"].splitlines()
    if "ended" in out:  # how it ended as sentences (as on the Releases page), not the raw audit detail
        ended = ["  " + s for s in why_sentences(estate, ledger, ledger.get_promotion(args.promotion))]
        lines = [line for line in lines if not line.startswith("  ended by ")] + ended
    print("\n".join(lines))
    return 0


def cmd_replay(args) -> int:
    from stella_operators.estate.loader import load_estate
    from stella_operators.promotion.replay import replay_promotion

    results = replay_promotion(load_estate(args.estate), _ledger(args), args.promotion)
    for r in results:
        mark = "same" if r.same else "DIFFERENT"
        print(f"{mark}: {r.gate_name}: recorded {r.recorded.verdict} {list(r.recorded.reasons)}, "
              f"replayed {r.replayed.verdict} {list(r.replayed.reasons)}")
    return 0 if all(r.same for r in results) else 1


def cmd_approve(args) -> int:
    """Approve or reject through the Airflow API server: identity is the Airflow login, not a flag."""
    import getpass

    import httpx

    password = os.environ.get("STELLA_API_PASSWORD") or getpass.getpass(f"Airflow password for {args.user}: ")
    with httpx.Client(base_url=args.api_url.rstrip("/"), timeout=30) as client:
        r = client.post("/auth/token", json={"username": args.user, "password": password})
        if r.status_code >= 400:
            print(f"stella: login as {args.user} failed: HTTP {r.status_code}", file=sys.stderr)
            return 2
        auth = {"Authorization": f"Bearer {token_of(r)}"}
        # Show what is decided on, and bind the decision to exactly that (the page does the same).
        shown = client.get(f"/stella/api/v1/promotions/{args.promotion}", headers=auth)
        if shown.status_code >= 400:
            print(f"stella: promotion {args.promotion}: HTTP {shown.status_code}: {_detail(shown)}", file=sys.stderr)
            return 1 if shown.status_code == 404 else 2
        promo = shown.json()
        release = promo["release"]
        print(f"{'Rejecting' if args.reject else 'Approving'} {promo['app']} -> {promo['environment']}: "
              f"release {release['name']} (content hash {release['content_hash']}), "
              f"requested by {promo['requested_by']}: {promo['reason']}")
        for c in release["components"]:
            print(f"  {c['name']}: {c.get('tag') or '(no tag)'} {c['ref']}")
        r = client.post(f"/stella/api/v1/promotions/{args.promotion}/approvals", headers=auth,
                        json={"decision": "reject" if args.reject else "approve", "comment": args.comment or "",
                              "content_hash": release["content_hash"]})
    body: dict[str, Any] = (r.json() if r.headers.get("content-type", "").startswith("application/json")
                            else {"detail": r.text})
    if r.status_code >= 400:
        sentence = refusal_sentence(body.get("refusal")) or body.get("detail")
        print(f"refused (HTTP {r.status_code}): {sentence}")
        return 1
    state = body.get("approvals", {})
    print(("counted" if body.get("counted") else f"not counted ({body.get('refusal')})")
          + f"; approvals {state.get('status')}, {state.get('needed')} more needed")
    return 0


def token_of(response) -> str:
    return response.json()["access_token"]


def _detail(response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:200]


def cmd_promotion_abort(args) -> int:
    """Abort through the Airflow API server: identity is the Airflow login, as for `stella approve`."""
    import getpass

    import httpx

    password = os.environ.get("STELLA_API_PASSWORD") or getpass.getpass(f"Airflow password for {args.user}: ")
    with httpx.Client(base_url=args.api_url.rstrip("/"), timeout=600) as client:
        r = client.post("/auth/token", json={"username": args.user, "password": password})
        if r.status_code >= 400:
            print(f"stella: login as {args.user} failed: HTTP {r.status_code}", file=sys.stderr)
            return 2
        token = r.json()["access_token"]
        r = client.post(f"/stella/api/v1/promotions/{args.promotion}/abort",
                        headers={"Authorization": f"Bearer {token}"}, json={"reason": args.reason})
    body: dict[str, Any] = (r.json() if r.headers.get("content-type", "").startswith("application/json")
                            else {"detail": r.text})
    if r.status_code >= 400:
        detail = body.get("detail")
        if isinstance(detail, list):  # FastAPI's validation errors
            detail = "; ".join(str(d.get("msg")) for d in detail)
        print(f"refused (HTTP {r.status_code}): {detail}")
        return 1
    done = body.get("abort", {})
    print(f"aborted: promotion {args.promotion} was {done.get('from_status')}, is now {body.get('status')}"
          + (f"; NOT restored: {', '.join(done['not_restored'])}" if done.get("not_restored") else "")
          + f" (evidence {done.get('evidence_id')})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stella", description=__doc__.splitlines()[0])
    p.add_argument("--ledger-conn-id", default=None, help="Airflow Connection of the ledger")
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="validate an estate file")
    v.add_argument("file", nargs="?", default=_default_estate())
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("schema", help="print the estate JSON Schema")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_schema)

    tt = sub.add_parser("target-types", help="list installed target types (one per line)")
    tt.add_argument("--json", action="store_true", help="name, object, distribution and version of each")
    tt.set_defaults(func=cmd_target_types)

    d = sub.add_parser("dags", help="the estate's DAG files").add_subparsers(dest="dags_cmd", required=True)
    dr = d.add_parser("render", help="write the thin DAG files (apps split over shard files) into a DAGs folder")
    dr.add_argument("--estate", default=_default_estate())
    dr.add_argument("-o", "--output", required=True, help="the DAGs folder")
    grp = dr.add_mutually_exclusive_group()
    grp.add_argument("--apps-per-file", type=int, default=25, help="shards = ceil(apps / this) (default 25)")
    grp.add_argument("--shards", type=int, help="number of DAG files, whatever the estate size")
    dr.set_defaults(func=cmd_dags_render)

    r = sub.add_parser("release", help="releases").add_subparsers(dest="release_cmd", required=True)
    rc = r.add_parser("create", help="seal a release through the Airflow API server, as your Airflow login",
                      description="Triggers the app's release DAG as the logged-in Airflow user, who is recorded "
                                  "as the release's creator (separation of duties relies on it), and waits for it.")
    rc.add_argument("--estate", default=_default_estate())
    rc.add_argument("--app", required=True)
    rc.add_argument("--name", required=True)
    rc.add_argument("--commit")
    rc.add_argument("--api-url", default=os.environ.get("STELLA_API_URL", "http://localhost:8080"))
    rc.add_argument("--user", default=os.environ.get("STELLA_API_USER", os.environ.get("USER", "admin")),
                    help="Airflow user to log in as (password from STELLA_API_PASSWORD or a prompt); "
                         "recorded as the creator")
    rc.add_argument("--timeout", type=float, default=600, help="seconds to wait for the release run")
    rc.add_argument("--no-wait", action="store_true", help="print the run id and return")
    rc.add_argument("refs", nargs="+", metavar="COMPONENT=TAG|sha256:DIGEST")
    rc.set_defaults(func=cmd_release_create)

    st = sub.add_parser("status", help="deployed release per app and environment")
    st.add_argument("--estate", default=_default_estate())
    st.set_defaults(func=cmd_status)

    w = sub.add_parser("why", help='"why blocked?" for a promotion')
    w.add_argument("promotion")
    w.add_argument("--estate", default=_default_estate())
    w.set_defaults(func=cmd_why)

    rp = sub.add_parser("replay", help="re-decide a promotion's recorded gate verdicts from their inputs")
    rp.add_argument("promotion")
    rp.add_argument("--estate", default=_default_estate())
    rp.set_defaults(func=cmd_replay)

    ap = sub.add_parser("approve", help="approve (or --reject) a promotion through the Airflow API server")
    ap.add_argument("promotion")
    ap.add_argument("--reject", action="store_true")
    ap.add_argument("-m", "--comment", default="")
    ap.add_argument("--api-url", default=os.environ.get("STELLA_API_URL", "http://localhost:8080"))
    ap.add_argument("--user", default=os.environ.get("STELLA_API_USER", os.environ.get("USER", "admin")),
                    help="Airflow user (password from STELLA_API_PASSWORD or a prompt)")
    ap.set_defaults(func=cmd_approve)

    pr = sub.add_parser("promotion", help="promotions").add_subparsers(dest="promotion_cmd", required=True)
    pa = pr.add_parser("abort", help="end a waiting or stuck promotion (cancelled, or rolled back if deploying)")
    pa.add_argument("promotion")
    pa.add_argument("--reason", "-m", required=True, help="why; recorded in the audit log and the evidence")
    pa.add_argument("--api-url", default=os.environ.get("STELLA_API_URL", "http://localhost:8080"))
    pa.add_argument("--user", default=os.environ.get("STELLA_API_USER", os.environ.get("USER", "admin")),
                    help="Airflow user (password from STELLA_API_PASSWORD or a prompt)")
    pa.set_defaults(func=cmd_promotion_abort)

    e = sub.add_parser("evidence", help="evidence records").add_subparsers(dest="evidence_cmd", required=True)
    ev = e.add_parser("verify", help="verify evidence records (ledger ids or exported files) against the trust store",
                      description="Trusts only the trust store: --trust PATH, else $STELLA_TRUST_DIR, else the "
                                  "Airflow Connection stella_trust (extra 'path' or 'public_keys').")
    ev.add_argument("refs", nargs="+", metavar="ID|FILE")
    ev.add_argument("--trust", action="append", metavar="PATH",
                    help="trusted PEM public keys: a directory of *.pub/*.pem files or one file (repeatable)")
    ev.add_argument("--public-key", action="append", metavar="PEM", help="a trusted public key file (= --trust)")
    ev.add_argument("--trust-ledger-keys", action="store_true",
                    help="trust the keys registered in the ledger (UNSAFE: any signing key registers itself)")
    ev.set_defaults(func=cmd_evidence_verify)
    pk = e.add_parser("public-key", help="print the configured signing key's public key (for a trust store)")
    pk.add_argument("-o", "--output")
    pk.set_defaults(func=cmd_evidence_public_key)
    kg = e.add_parser("keygen", help="create an Ed25519 signing key and its public key file")
    kg.add_argument("key", help="where the private key goes (created 0600; never overwritten)")
    kg.add_argument("--public", required=True, help="where its public key goes (put it in the trust store)")
    kg.set_defaults(func=cmd_evidence_keygen)
    ex = e.add_parser("export", help="write one evidence record to a file")
    ex.add_argument("id")
    ex.add_argument("-o", "--output", required=True)
    ex.set_defaults(func=cmd_evidence_export)
    au = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_cmd", required=True)
    av = au.add_parser("verify", help="walk the hash chain; name the first changed, removed, inserted or reordered "
                                      "event (exit 1), else print the event count and head hash")
    av.add_argument("--checkpoint", action="append", metavar="FILE",
                    help="a signed checkpoint (from `stella audit checkpoint`): also detects events cut off the end")
    av.add_argument("--trust", action="append", metavar="PATH",
                    help="trusted PEM public keys for the checkpoints (default: the trust store, as evidence verify)")
    av.set_defaults(func=cmd_audit_verify, public_key=None, trust_ledger_keys=False)
    ac = au.add_parser("checkpoint", help="sign the chain's event count and head hash into FILE (keep it elsewhere)")
    ac.add_argument("-o", "--output", required=True, metavar="FILE")
    ac.set_defaults(func=cmd_audit_checkpoint)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EstateError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except SystemExit:
        raise
    except Exception as exc:  # one line, never a traceback (set STELLA_DEBUG=1 to see it)
        if os.environ.get("STELLA_DEBUG"):
            raise
        from stella_operators.ledger import LedgerError
        from stella_operators.registry.client import RegistryError
        from stella_operators.release.service import ReleaseRefused

        refused = isinstance(exc, (ReleaseRefused, RegistryError, LedgerError))
        print(f"stella: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1 if refused else 2


if __name__ == "__main__":
    sys.exit(main())
