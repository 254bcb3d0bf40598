"""What the Approvals and Releases pages show, as plain data read from the ledger and the estate.

An approver sees what they approve *against*: per component the tag and digest the environment
runs now and the new ones, each gate's verdict, who asked and why, and whether they themselves may
decide (and if not, why). The board shows each target's own state, so an environment whose hosts
disagree is marked degraded instead of showing one release for all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stella_operators.api.sentences import (
    canary_label,
    canary_sentences,
    canary_step_line,
    ended_sentence,
    gate_sentence,
    refusal_sentence,
)
from stella_operators.approvals.policy import DUPLICATE, Approver, eligibility
from stella_operators.approvals.service import approval_state, effective_requirement
from stella_operators.drift.service import last_drift_check
from stella_operators.evidence.envelope import Verification, verify_evidence
from stella_operators.evidence.trust import TrustStore, TrustStoreError
from stella_operators.promotion.canary_progress import canary_progress
from stella_operators.promotion.overrides import change_sentence, manual_changes
from stella_operators.promotion.state import PromotionStatus as S
from stella_operators.promotion.why import last_transition, not_passed

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate
    from stella_operators.ledger.protocols import ApprovalBook, EvidenceBook, ReadLedger
    from stella_operators.promotion.model import Promotion
    from stella_operators.release.model import Release

GOOD_TARGET = ("deployed", "unchanged")
# How far back the board looks for a target's last result (promotions per app and environment).
TARGET_HISTORY = 200


def run_link(promo: Promotion) -> str | None:
    """The promotion's Airflow run in Airflow's own UI."""
    if not promo.dag_id or not promo.run_id:
        return None
    return f"/dags/{promo.dag_id}/runs/{promo.run_id}"


def _components(release: Release, current: Release | None) -> list[dict[str, Any]]:
    now = {c.name: c for c in current.components} if current is not None else {}
    current_name = current.name if current is not None else None
    out = []
    for c in release.components:
        before = now.get(c.name)
        out.append({"name": c.name, "repository": c.repository, "tag": c.tag, "digest": c.digest,
                    "current": None if before is None else {"tag": before.tag, "digest": before.digest,
                                                            "release": current_name},
                    "changed": before is None or before.digest != c.digest})
    return out


def your_standing(estate: Estate, ledger: ReadLedger, promo: Promotion, release: Release,
                  approver: Approver) -> dict[str, Any]:
    """May this person approve or reject, and if not, the sentence saying why."""
    requirement, groups = effective_requirement(estate, promo)
    if promo.status != S.AWAITING_APPROVAL:
        return {"can_decide": False, "why_not": f"This promotion is {str(promo.status).replace('_', ' ')}; "
                                                "it no longer waits for approvals."}
    code = eligibility(requirement, groups, approver, requester=promo.requested_by,
                       release_creator=release.created_by)
    if code is None:
        mine = [a for a in ledger.approvals_for(promo.id)
                if a.approver == approver.user and a.counted and a.content_hash == release.content_hash]
        if any(a.decision == "approve" for a in mine):
            return {"can_decide": False, "why_not": "You approved this promotion; one person counts once.",
                    "code": DUPLICATE}
    if code is None:
        return {"can_decide": True, "why_not": None}
    return {"can_decide": False, "why_not": refusal_sentence(code, list(requirement.groups)), "code": code}


def approval_card(estate: Estate, ledger: ReadLedger, promo: Promotion, approver: Approver, *,
                  plan: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything the Approvals page shows for one promotion, for the person looking at it; `plan`
    is the live deployment plan (deploy/preview.py, as a dict) the page shows and binds an approval to."""
    release = ledger.get_release(promo.release_id)
    current = ledger.deployed_release(promo.app, promo.environment)
    requirement, groups = effective_requirement(estate, promo)
    eligible = sorted({u for g in groups for u in g.users} | {f"role:{r}" for g in groups for r in g.roles})
    attempts = ledger.approvals_for(promo.id)
    card = {
        "id": promo.id, "app": promo.app, "environment": promo.environment, "status": str(promo.status),
        "requested_by": promo.requested_by, "requested_at": promo.requested_at.isoformat(),
        "reason": promo.reason, "run_link": run_link(promo),
        "release": {"id": release.id, "name": release.name, "content_hash": release.content_hash,
                    "created_by": release.created_by},
        "current_release": current.name if current is not None else None,
        "components": _components(release, current),
        "gates": [{"gate": v.gate_name, "type": v.gate_type, "verdict": str(v.verdict), "reasons": list(v.reasons),
                   "sentence": gate_sentence({"gate": v.gate_name, "type": v.gate_type, "verdict": str(v.verdict),
                                              "reasons": list(v.reasons), "message": v.message, "remedy": v.remedy})}
                  for v, _inputs in ledger.gate_verdicts_for(promo.id)],
        "decisions": [{"approver": a.approver, "decision": a.decision, "comment": a.comment,
                       "at": a.at.isoformat()} for a in attempts if a.counted],
        "required": requirement.required, "eligible": eligible,
        "separation_of_duties": requirement.separation_of_duties,
        "you": {"user": approver.user, **your_standing(estate, ledger, promo, release, approver)},
        "plan": plan,
    }
    if promo.status == S.AWAITING_APPROVAL:
        st = approval_state(estate, ledger, promo.id)
        card["approvals"] = {"status": st.status, "approvers": list(st.approvers), "needed": st.needed}
    else:
        card["outcome"] = why_sentences(estate, ledger, promo)
    return card


def why_sentences(estate: Estate, ledger: ReadLedger, promo: Promotion, *,
                  plan: dict[str, Any] | None = None) -> list[str]:
    """Why a promotion stands where it does, in sentences (gates that did not pass, then how it ended);
    with `plan` (a waiting promotion's live plan), what approving it would change, per target."""
    sentences = [gate_sentence(b) for b in not_passed([v for v, _ in ledger.gate_verdicts_for(promo.id)])]
    status = str(promo.status)
    canary = canary_progress(estate, ledger, promo)
    walking = canary is not None and canary.state != "not_started"
    if canary is not None and walking:
        sentences += canary_sentences(canary.model_dump(mode="json"))
    if promo.status == S.AWAITING_APPROVAL:
        st = approval_state(estate, ledger, promo.id)
        _, groups = effective_requirement(estate, promo)
        who = sorted({u for g in groups for u in g.users} | {f"role:{r}" for g in groups for r in g.roles})
        sentences.append(f"It waits for {st.needed} more approval(s) from {', '.join(who) or 'nobody'}"
                         + (f"; approved so far by {', '.join(st.approvers)}." if st.approvers else "."))
        if plan is not None:
            sentences += plan_sentences(plan)
    elif promo.status in (S.FAILED, S.ROLLED_BACK, S.REJECTED, S.CANCELLED):
        last = last_transition(ledger, promo.id)
        if last is not None and not (sentences and status == "rejected" and not (last["detail"] or {})):
            sentence = ended_sentence(status, last["actor"], last["detail"], promo.environment)
            sentences.append(_name_the_host(estate, promo, sentence, (last["detail"] or {}).get("error")))
        comments = [a for a in ledger.approvals_for(promo.id) if a.counted and a.decision == "reject" and a.comment]
        for a in comments:
            sentences.append(f"{a.approver} wrote: \u201c{a.comment}\u201d")
    elif promo.status in (S.DEPLOYING, S.VERIFYING) and walking:
        pass  # the canary's sentences say where it stands
    elif promo.status in (S.APPROVED, S.DEPLOYING, S.VERIFYING):
        by = approved_by(ledger, promo)
        sentences.append("It is approved" + (f" by {', '.join(by)}" if by else "")
                         + f"; its Airflow run deploys it to {promo.environment} next.")
    elif promo.status == S.DEPLOYED:
        sentences.append(f"It was deployed and verified in {promo.environment}.")
    if not sentences:
        sentences.append(f"It is {status.replace('_', ' ')}; nothing blocks it.")
    return sentences


def plan_sentences(plan: dict[str, Any]) -> list[str]:
    """A plan (DeploymentPlan.to_dict()) as sentences, one per target and component."""
    out = [f"If it is deployed now (plan {plan['hash']}):"]
    for row in plan["targets"]:
        out += row["sentences"] if row.get("unknown") else [f"{row['target']}: {s}" for s in row["sentences"]]
    return out


def _name_the_host(estate: Estate, promo: Promotion, sentence: str, error: str | None) -> str:
    """An error that names no target (e.g. the Docker client's "Failed to establish connection")
    gets the environment's targets added, so people know where to look."""
    if not error:
        return sentence
    names = [t.name for t in estate.environment(promo.environment).targets]
    if any(n in error for n in names):
        return sentence
    where = f"on {names[0]}" if len(names) == 1 else f"on one of {', '.join(names)}"
    return sentence.rstrip(".") + f" ({where}, in {promo.environment})."


def approved_by(ledger: ApprovalBook, promo: Promotion) -> list[str]:
    """Who approved, in order (counted approvals only)."""
    seen: list[str] = []
    for a in ledger.approvals_for(promo.id):
        if a.counted and a.decision == "approve" and a.approver not in seen:
            seen.append(a.approver)
    return seen


def _release_for(digests: dict[str, Any], candidates: list[Release | None]) -> str | None:
    for rel in candidates:
        if rel is not None and dict(rel.digests()) == {k: v for k, v in digests.items() if v}:
            return rel.name
    return None


def target_states(estate: Estate, ledger: ReadLedger, app: str, env_name: str,
                  recent: list[Promotion]) -> list[dict[str, Any]]:
    """Each target's last recorded result in this environment: what it runs, how it went."""
    env = estate.environment(env_name)
    last: dict[str, tuple[Any, Any]] = {}
    wanted = {t.name for t in env.targets}
    for promo in recent:  # newest request first: stop once every target has its latest result
        if wanted <= last.keys():
            break
        if promo.app != app or promo.environment != env_name:
            continue
        for dep in ledger.deployments_for(promo.id):
            for tr in dep.targets:
                if tr.status == "unchanged" and not tr.digests:
                    continue  # not touched (blue-green / canary: the other group): its earlier result stands
                if tr.target not in last or tr.recorded_at > last[tr.target][0].recorded_at:
                    last[tr.target] = (tr, promo)
    releases = {}
    out: list[dict[str, Any]] = []
    for t in env.targets:
        if t.name not in last:
            out.append({"target": t.name, "release": None, "result": None, "healthy": None, "at": None,
                        "digests": {}, "promotion_id": None})
            continue
        tr, promo = last[t.name]
        if promo.release_id not in releases:
            releases[promo.release_id] = ledger.get_release(promo.release_id)
        candidates = [releases[promo.release_id], ledger.deployed_release(app, env_name)]
        running = {k: v for k, v in (tr.digests or {}).items() if v}
        name = _release_for(running, candidates) if running else None
        verified = candidates[1].name if candidates[1] is not None else None
        # Back in a good state: rolled back and running again what it ran before -- also the host
        # whose own step failed, once the deployment was rolled back and it runs the verified release.
        restored = (tr.status == "rolled_back" and bool(running)) or (
            tr.status == "failed" and promo.status == "rolled_back" and name is not None and name == verified)
        out.append({"target": t.name, "release": name if running else None,
                    "runs_nothing": not running, "digests": running, "result": tr.status,
                    "restored": restored,
                    "healthy": tr.status in GOOD_TARGET or restored,
                    "at": tr.recorded_at.isoformat(),
                    "promotion_id": promo.id})
    return out


def environment_cell(estate: Estate, ledger: ReadLedger, app: str, env_name: str,
                     recent: list[Promotion]) -> dict[str, Any] | None:
    """The board cell: the release the environment last verified, each target's state, degraded or not."""
    rel = ledger.deployed_release(app, env_name)
    targets = target_states(estate, ledger, app, env_name, recent)
    drift = last_drift_check(ledger, app, env_name)
    if rel is None and all(t["result"] is None for t in targets) and drift is None:
        return None
    problems = []
    canary = canary_in_progress(estate, ledger, app, env_name, recent)
    # A canary walking: its release on its group is expected, not a disagreement between hosts.
    walking = ledger.get_release(ledger.get_promotion(canary["promotion_id"]).release_id).name if canary else None
    if drift is not None and drift["status"] == "drift" and not drift["superseded"]:
        problems.append(f"drift found {drift['checked_at']}: " + "; ".join(drift["findings"]))
    two_groups = estate.environment(env_name).strategy in ("blue_green", "canary")
    # An idle group is no problem: A/B's group A (its workloads stopped on purpose), or a blue-green /
    # canary group put back to running nothing after its deployment failed.
    idle = {t["target"] for t in targets if t.get("runs_nothing") and (
        t["result"] == "stopped" or (two_groups and t["result"] == "rolled_back"))}
    for t in targets:
        if t["result"] is None or t["target"] in idle:
            continue
        if t.get("runs_nothing"):
            problems.append(f"{t['target']} runs nothing (last result: {t['result'].replace('_', ' ')})")
        elif rel is not None and t["release"] != rel.name and not (walking and t["release"] == walking):
            problems.append(f"{t['target']} runs {t['release'] or 'other digests'}, not {rel.name}")
        elif not t["healthy"] and t["release"] is None:
            problems.append(f"{t['target']}: last result {t['result'].replace('_', ' ')}")
    releases_seen = {t["release"] for t in targets if t["result"] is not None and t["target"] not in idle}
    releases_seen -= {walking} if walking else set()
    if len(releases_seen) > 1 and not problems:
        problems.append("its targets run different releases: " + ", ".join(sorted(str(r) for r in releases_seen)))
    cell: dict[str, Any] = {"targets": targets, "degraded": bool(problems), "problems": problems, "drift": drift,
                            "canary": canary}
    if rel is not None:
        cell.update({"release_id": rel.id, "name": rel.name, "content_hash": rel.content_hash,
                     "components": [{"name": c.name, "ref": c.ref, "tag": c.tag, "digest": c.digest}
                                    for c in rel.components]})
    else:
        cell.update({"release_id": None, "name": None, "components": []})
    return cell


def canary_in_progress(estate: Estate, ledger: ReadLedger, app: str, env_name: str,
                       recent: list[Promotion]) -> dict[str, Any] | None:
    """The canary walking in this environment now (the newest deploying promotion), for the board cell."""
    promo = next((p for p in recent if p.app == app and p.environment == env_name and p.status == S.DEPLOYING), None)
    progress = canary_progress(estate, ledger, promo) if promo is not None else None
    if promo is None or progress is None:
        return None
    data = progress.model_dump(mode="json")
    return {"promotion_id": promo.id, "state": progress.state, "step": progress.current_step,
            "of": len(progress.plan), "weight": progress.current_weight, "distribution": data["distribution"],
            "waiting_since": data["waiting_for_human_since"], "label": canary_label(data)}


def timeline_canary(estate: Estate, ledger: ReadLedger, promo: Promotion) -> dict[str, Any] | None:
    """A promotion's canary on the timeline: its state and one compact line per step begun."""
    progress = canary_progress(estate, ledger, promo)
    if progress is None or progress.state == "not_started":
        return None
    data = progress.model_dump(mode="json")
    return {"state": progress.state, "label": canary_label(data), "waiting_since": data["waiting_for_human_since"],
            "lines": [canary_step_line(s) for s in data["steps"] if s["state"] != "pending"]}


def board(estate: Estate, ledger: ReadLedger, limit: int = 30) -> dict[str, Any]:
    """Environments x apps (with per-target state), and the promotion timeline with approvers."""
    recent = ledger.recent_promotions(max(limit, TARGET_HISTORY))
    cells: dict[str, dict[str, Any]] = {}
    for a in estate.apps:
        cells[a.name] = {e.name: environment_cell(estate, ledger, a.name, e.name, recent)
                         for e in estate.app_environments(a.name)}
    timeline = []
    for p in recent[:limit]:
        rel = ledger.get_release(p.release_id)
        timeline.append({
            "id": p.id, "app": p.app, "environment": p.environment, "status": str(p.status),
            "release": rel.name, "requested_by": p.requested_by, "reason": p.reason,
            "requested_at": p.requested_at.isoformat(), "approved_by": approved_by(ledger, p),
            "run_link": run_link(p),
            "evidence": [{"id": ev.id, "type": str(ev.type)} for ev in ledger.evidence_for(promotion_id=p.id)],
            "gates": [{"name": v.gate_name, "verdict": str(v.verdict), "reasons": list(v.reasons)}
                      for v, _ in ledger.gate_verdicts_for(p.id)],
            "manual_changes": [change_sentence(c, str(p.status)) for c in manual_changes(ledger, p.id)],
            "canary": timeline_canary(estate, ledger, p)})
    return {"environments": [e.name for e in estate.environments], "apps": list(cells), "deployed": cells,
            "timeline": timeline, "pending_approvals": len(ledger.promotions_with_status("awaiting_approval"))}


def evidence_view(ledger: EvidenceBook, evidence_id: str, trust: TrustStore | TrustStoreError) -> dict[str, Any]:
    """One evidence record as people read it, verified against the configured trust store (never the
    ledger's self-registered keys); with no trust store it reads "not verified" and says why."""
    record = ledger.get_evidence(evidence_id)   # NotFound for the caller
    if isinstance(trust, TrustStoreError):
        check = Verification(False, str(trust), key_id=record.key_id, evidence_id=record.id)
    else:
        check = verify_evidence(record, trust.keys)
    try:
        content = record.content
    except (KeyError, ValueError, TypeError):
        content = {}
    return {"id": record.id, "type": str(record.type), "created_at": record.created_at.isoformat(),
            "key_id": record.key_id, "subjects": [s.model_dump() for s in record.subjects], "content": content,
            "verified": check.ok, "verify_reason": check.reason}
