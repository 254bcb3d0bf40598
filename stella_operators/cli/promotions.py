"""`stella status | why | replay | approve | promotion abort`: where promotions stand, and acting on them."""

from __future__ import annotations

import argparse
import sys

from stella_operators.api.sentences import canary_sentences, refusal_sentence
from stella_operators.approvals.policy import PLAN_CHANGED
from stella_operators.cli.common import (
    API_URL,
    API_USER,
    api_login,
    default_estate,
    open_ledger,
    response_body,
    response_detail,
)


def cmd_status(args) -> int:
    """Per app and environment the verified release, then each target's own last result; an
    environment whose hosts disagree is marked DEGRADED with the reason (as on the Releases page)."""
    from stella_operators.api.views import TARGET_HISTORY, environment_cell
    from stella_operators.estate.loader import load_estate

    estate = load_estate(args.estate)
    ledger = open_ledger(args)
    recent = ledger.recent_promotions(TARGET_HISTORY)
    for app in estate.apps:
        for env in estate.app_environments(app.name):
            cell = environment_cell(estate, ledger, app.name, env.name, recent)
            if cell is None:
                print(f"{app.name:20} {env.name:12} -")
                continue
            shown = (f"{cell['name']} ({cell['release_id']}) " + " ".join(c["ref"] for c in cell["components"])
                     if cell["name"] else "no verified release")
            if cell.get("canary"):
                shown += f"  {cell['canary']['label'].upper()} (promotion {cell['canary']['promotion_id']})"
            if cell["degraded"]:
                shown += "  DEGRADED: " + "; ".join(cell["problems"])
            print(f"{app.name:20} {env.name:12} {shown}")
            drift = cell.get("drift")
            if drift is not None:
                said = "no drift" if drift["status"] == "ok" else "DRIFT: " + "; ".join(drift["findings"])
                print(f"{'':20}   drift check at {drift['checked_at']}: {said}"
                      + (" (since redeployed)" if drift["superseded"] and drift["status"] == "drift" else ""))
            for t in cell["targets"]:
                if t["result"] is None:
                    print(f"{'':20}   {t['target']:12} nothing deployed yet")
                    continue
                runs = "runs nothing" if t.get("runs_nothing") else (t["release"] or "other digests")
                restored = ", restored" if t.get("restored") else ""
                print(f"{'':20}   {t['target']:12} {runs}, last result {t['result']}{restored} at {t['at']}")
    return 0


def cmd_why(args) -> int:
    from stella_operators.api.views import plan_sentences, why_sentences
    from stella_operators.approvals.plans import live_plan
    from stella_operators.estate.loader import load_estate
    from stella_operators.promotion.canary_progress import canary_progress  # here: CLI start-up stays light
    from stella_operators.promotion.why import explain_promotion
    from stella_operators.targets.registry import build_target

    estate, ledger = load_estate(args.estate), open_ledger(args)
    out = explain_promotion(estate, ledger, args.promotion)
    lines = out["text"].splitlines()
    promo = ledger.get_promotion(args.promotion)
    if promo.status == "awaiting_approval":  # what approving it would change, read from the hosts now
        plan = live_plan(estate, ledger, promo, build_target)
        lines += ["  " + s for s in plan_sentences(plan.to_dict())]
    if "ended" in out:  # how it ended as sentences (as on the Releases page), not the raw audit detail
        ended = ["  " + s for s in why_sentences(estate, ledger, ledger.get_promotion(args.promotion))]
        lines = [line for line in lines if not line.startswith("  ended by ")] + ended
    else:  # a canary's walk (its sentences are part of why_sentences above when it ended)
        progress = canary_progress(estate, ledger, promo)
        if progress is not None and progress.state != "not_started":
            lines = [line for line in lines if line != "  nothing blocks it"]
            lines += ["  " + s for s in canary_sentences(progress.model_dump(mode="json"))]
    print("\n".join(lines))
    return 0


def cmd_replay(args) -> int:
    from stella_operators.estate.loader import load_estate
    from stella_operators.promotion.replay import replay_promotion

    results = replay_promotion(load_estate(args.estate), open_ledger(args), args.promotion)
    for r in results:
        mark = "same" if r.same else "DIFFERENT"
        print(f"{mark}: {r.gate_name}: recorded {r.recorded.verdict} {list(r.recorded.reasons)}, "
              f"replayed {r.replayed.verdict} {list(r.replayed.reasons)}")
    return 0 if all(r.same for r in results) else 1


def cmd_approve(args) -> int:
    """Approve or reject through the Airflow API server: identity is the Airflow login, not a flag.
    Prints what will change per host and binds the decision to that plan (and the digests)."""
    import httpx

    from stella_operators.api.views import plan_sentences

    with httpx.Client(base_url=args.api_url.rstrip("/"), timeout=30) as client:
        token = api_login(client, args.user)
        if token is None:
            return 2
        auth = {"Authorization": f"Bearer {token}"}
        # Show what is decided on, and bind the decision to exactly that (the page does the same).
        shown = client.get(f"/stella/api/v1/promotions/{args.promotion}", headers=auth)
        if shown.status_code >= 400:
            print(f"stella: promotion {args.promotion}: HTTP {shown.status_code}: {response_detail(shown)}",
                  file=sys.stderr)
            return 1 if shown.status_code == 404 else 2
        promo = shown.json()
        release = promo["release"]
        print(f"{'Rejecting' if args.reject else 'Approving'} {promo['app']} -> {promo['environment']}: "
              f"release {release['name']} (content hash {release['content_hash']}), "
              f"requested by {promo['requested_by']}: {promo['reason']}")
        for c in release["components"]:
            print(f"  {c['name']}: {c.get('tag') or '(no tag)'} {c['ref']}")
        plan = promo.get("plan")
        if plan:
            print(f"What will change (read from the hosts now; plan {plan['hash']}):")
            for line in plan_sentences(plan)[1:]:
                print(f"  {line}")
        r = client.post(f"/stella/api/v1/promotions/{args.promotion}/approvals", headers=auth,
                        json={"decision": "reject" if args.reject else "approve", "comment": args.comment or "",
                              "content_hash": release["content_hash"], "plan_hash": plan["hash"] if plan else None})
    body = response_body(r)
    if r.status_code >= 400:
        sentence = refusal_sentence(body.get("refusal")) or response_detail(r)
        print(f"refused (HTTP {r.status_code}): {sentence}")
        if body.get("refusal") == PLAN_CHANGED and body.get("plan"):
            print("The plan now:")
            for line in plan_sentences(body["plan"])[1:]:
                print(f"  {line}")
        return 1
    state = body.get("approvals", {})
    print(("counted" if body.get("counted") else f"not counted ({body.get('refusal')})")
          + f"; approvals {state.get('status')}, {state.get('needed')} more needed")
    return 0


def cmd_promotion_abort(args) -> int:
    """Abort through the Airflow API server: identity is the Airflow login, as for `stella approve`."""
    import httpx

    with httpx.Client(base_url=args.api_url.rstrip("/"), timeout=600) as client:
        token = api_login(client, args.user)
        if token is None:
            return 2
        r = client.post(f"/stella/api/v1/promotions/{args.promotion}/abort",
                        headers={"Authorization": f"Bearer {token}"}, json={"reason": args.reason})
    body = response_body(r)
    if r.status_code >= 400:
        print(f"refused (HTTP {r.status_code}): {response_detail(r)}")
        return 1
    done = body.get("abort", {})
    print(f"aborted: promotion {args.promotion} was {done.get('from_status')}, is now {body.get('status')}"
          + (f"; NOT restored: {', '.join(done['not_restored'])}" if done.get("not_restored") else "")
          + f" (evidence {done.get('evidence_id')})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    st = sub.add_parser("status", help="deployed release per app and environment")
    st.add_argument("--estate", default=default_estate())
    st.set_defaults(func=cmd_status)

    w = sub.add_parser("why", help='"why blocked?" for a promotion')
    w.add_argument("promotion")
    w.add_argument("--estate", default=default_estate())
    w.set_defaults(func=cmd_why)

    rp = sub.add_parser("replay", help="re-decide a promotion's recorded gate verdicts from their inputs")
    rp.add_argument("promotion")
    rp.add_argument("--estate", default=default_estate())
    rp.set_defaults(func=cmd_replay)

    ap = sub.add_parser("approve", help="approve (or --reject) a promotion through the Airflow API server")
    ap.add_argument("promotion")
    ap.add_argument("--reject", action="store_true")
    ap.add_argument("-m", "--comment", default="")
    ap.add_argument("--api-url", default=API_URL)
    ap.add_argument("--user", default=API_USER,
                    help="Airflow user (password from STELLA_API_PASSWORD or a prompt)")
    ap.set_defaults(func=cmd_approve)

    pr = sub.add_parser("promotion", help="promotions").add_subparsers(dest="promotion_cmd", required=True)
    pa = pr.add_parser("abort", help="end a waiting or stuck promotion (cancelled, or rolled back if deploying)")
    pa.add_argument("promotion")
    pa.add_argument("--reason", "-m", required=True, help="why; recorded in the audit log and the evidence")
    pa.add_argument("--api-url", default=API_URL)
    pa.add_argument("--user", default=API_USER, help="Airflow user (password from STELLA_API_PASSWORD or a prompt)")
    pa.set_defaults(func=cmd_promotion_abort)
