"""FastAPI app mounted by the plugin at /stella. Every route takes Airflow's user (GetUserDep):
nothing is reachable without Airflow authentication, and approver identity is never a body field."""

from __future__ import annotations

import os
from typing import Any, Literal

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from stella_operators.api.ui import APPROVALS_PAGE, RELEASES_PAGE

app = FastAPI(title="stella-operators", version="1", description="Releases, promotions, approvals, evidence.")


class ApprovalBody(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str = Field("", max_length=2000)
    content_hash: str | None = Field(None, description="the release content hash you reviewed; refused if stale")


def _estate():
    from stella_operators.estate.loader import cached_estate

    return cached_estate(os.environ.get("STELLA_ESTATE", "include/estate.yaml"))


def _ledger():
    from stella_operators.hooks.ledger import LedgerHook

    return LedgerHook().get_conn()


def _approver(user) -> Any:
    from stella_operators.approvals.policy import Approver

    roles = set()
    if getattr(user, "role", None):
        roles.add(str(user.role))
    for r in getattr(user, "roles", None) or []:
        roles.add(str(getattr(r, "name", r)))
    return Approver(user=user.get_name(), roles=frozenset(roles))


def _csrf_guard(request: Request) -> None:
    # Cookie-authenticated browser calls must come from our own page (a custom header forces a
    # CORS preflight cross-site); token-authenticated API clients are not exposed to CSRF.
    if "authorization" not in request.headers and request.headers.get("x-requested-with") != "stella":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cookie-authenticated calls need X-Requested-With: stella")


def _promotion_view(ledger, estate, promo) -> dict[str, Any]:
    from stella_operators.approvals.service import approval_state

    release = ledger.get_release(promo.release_id)
    view = {
        "id": promo.id, "app": promo.app, "environment": promo.environment, "status": str(promo.status),
        "requested_by": promo.requested_by, "reason": promo.reason, "dag_id": promo.dag_id, "run_id": promo.run_id,
        "release": {"id": release.id, "name": release.name, "content_hash": release.content_hash,
                    "created_by": release.created_by,
                    "components": [{"name": c.name, "ref": c.ref, "tag": c.tag} for c in release.components]},
        "decision": promo.decision,
    }
    if str(promo.status) == "awaiting_approval":
        st = approval_state(estate, ledger, promo.id)
        view["approvals"] = {"status": st.status, "approvers": list(st.approvers), "needed": st.needed}
    return view


@app.get("/api/v1/promotions")
def list_promotions(user: GetUserDep, status_: str = Query("awaiting_approval", alias="status"),
                    app_: str | None = Query(None, alias="app"), environment: str | None = None) -> dict[str, Any]:
    ledger, estate = _ledger(), _estate()
    promos = ledger.promotions_with_status(status_, app=app_, environment=environment)
    return {"promotions": [_promotion_view(ledger, estate, p) for p in promos]}


@app.get("/api/v1/promotions/{promotion_id}")
def get_promotion(promotion_id: str, user: GetUserDep) -> dict[str, Any]:
    from stella_operators.ledger import NotFound
    from stella_operators.promotion.why import explain_promotion

    ledger, estate = _ledger(), _estate()
    try:
        promo = ledger.get_promotion(promotion_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no promotion {promotion_id}") from None
    view = _promotion_view(ledger, estate, promo)
    view["gates"] = [v.model_dump(mode="json") for v, _ in ledger.gate_verdicts_for(promotion_id)]
    view["approval_attempts"] = [
        {"approver": a.approver, "decision": a.decision, "counted": a.counted, "refusal": a.refusal,
         "comment": a.comment, "at": a.at.isoformat()} for a in ledger.approvals_for(promotion_id)]
    view["why"] = explain_promotion(estate, ledger, promotion_id)
    return view


@app.post("/api/v1/promotions/{promotion_id}/approvals")
def approve(promotion_id: str, body: ApprovalBody, request: Request, user: GetUserDep) -> JSONResponse:
    from stella_operators.approvals.policy import BOUND_TO_OTHER_RELEASE, CLOSED
    from stella_operators.approvals.service import submit_approval
    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger import NotFound
    from stella_operators.sensors.approval_input import wake_approval_sensor

    _csrf_guard(request)
    ledger, estate = _ledger(), _estate()
    try:
        result = submit_approval(estate, ledger, SigningKeyHook().get_conn(), promotion_id, _approver(user),
                                 body.decision, body.comment, body.content_hash)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no promotion {promotion_id}") from None
    if result.settled:  # this call settled the promotion: resume its parked approval sensor now
        wake_approval_sensor(ledger, promotion_id)
    state = {"status": result.state.status, "approvers": list(result.state.approvers), "needed": result.state.needed}
    # What was stored, in the transaction that stored it: counted or not, and the promotion's status after.
    payload = {"counted": result.counted, "refusal": result.refusal, "approvals": state,
               "evidence_id": result.evidence_id, "approver": user.get_name(), "promotion_status": result.status}
    if result.refusal == CLOSED:
        payload["detail"] = f"promotion {promotion_id} is {result.status}, not awaiting approval"
    if result.refusal in (BOUND_TO_OTHER_RELEASE, CLOSED):
        return JSONResponse(payload, status_code=status.HTTP_409_CONFLICT)
    if result.refusal and not result.duplicate:
        return JSONResponse(payload, status_code=status.HTTP_403_FORBIDDEN)
    return JSONResponse(payload, status_code=status.HTTP_201_CREATED if result.counted else status.HTTP_200_OK)


@app.get("/api/v1/evidence/{evidence_id}")
def get_evidence(evidence_id: str, user: GetUserDep) -> JSONResponse:
    import json

    from stella_operators.ledger import NotFound

    try:
        record = _ledger().get_evidence(evidence_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evidence {evidence_id}") from None
    return JSONResponse(json.loads(record.to_file_json()),
                        headers={"Content-Disposition": f'attachment; filename="{evidence_id.replace(":", "-")}.json"'})


@app.get("/api/v1/board")
def release_board(user: GetUserDep, limit: int = Query(30, ge=1, le=500)) -> dict[str, Any]:
    """Environments x apps with the deployed release and digests, plus the promotion timeline."""
    ledger, estate = _ledger(), _estate()
    envs = [e.name for e in estate.environments]
    cells: dict[str, dict[str, Any]] = {}
    for a in estate.apps:
        cells[a.name] = {}
        for e in estate.app_environments(a.name):
            rel = ledger.deployed_release(a.name, e.name)
            cells[a.name][e.name] = None if rel is None else {
                "release_id": rel.id, "name": rel.name, "content_hash": rel.content_hash,
                "components": [{"name": c.name, "ref": c.ref, "tag": c.tag} for c in rel.components]}
    timeline = []
    for p in ledger.recent_promotions(limit):
        rel = ledger.get_release(p.release_id)
        evidence = [{"id": ev.id, "type": str(ev.type)} for ev in ledger.evidence_for(promotion_id=p.id)]
        timeline.append({"id": p.id, "app": p.app, "environment": p.environment, "status": str(p.status),
                         "release": rel.name, "requested_by": p.requested_by, "reason": p.reason,
                         "requested_at": p.requested_at.isoformat(), "evidence": evidence,
                         "gates": [{"name": v.gate_name, "verdict": str(v.verdict), "reasons": list(v.reasons)}
                                   for v, _ in ledger.gate_verdicts_for(p.id)]})
    pending = len(ledger.promotions_with_status("awaiting_approval"))
    return {"environments": envs, "apps": list(cells), "deployed": cells, "timeline": timeline,
            "pending_approvals": pending}


@app.get("/ui/releases", response_class=HTMLResponse)
def releases_page(user: GetUserDep) -> str:
    return RELEASES_PAGE


@app.get("/ui/approvals", response_class=HTMLResponse)
def approvals_page(user: GetUserDep) -> str:
    return APPROVALS_PAGE
