"""FastAPI app mounted by the plugin at /stella. Every route takes Airflow's user (GetUserDep):
nothing is reachable without Airflow authentication, and approver identity is never a body field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from stella_operators.api.evidence_page import render_evidence_page
from stella_operators.api.ui import APPROVALS_PAGE, RELEASES_PAGE
from stella_operators.api.views import approval_card, board, evidence_view, why_sentences
from stella_operators.promotion.canary_progress import CanaryProgress, canary_progress
from stella_operators.promotion.state import PromotionStatus
from stella_operators.settings import estate_path

if TYPE_CHECKING:  # annotations of helpers only, never of routes (FastAPI resolves those at run time)
    from stella_operators.estate.models import Estate
    from stella_operators.ledger.protocols import ApprovalLedger, FullLedger
    from stella_operators.promotion.model import Promotion

app = FastAPI(title="stella-operators", version="1",
              description="Releases, promotions, approvals, evidence. Every route needs Airflow authentication "
                          "(a JWT from `POST /auth/token`, or the UI's cookie) except this schema and its docs "
                          "pages, which are public as Airflow's own `/openapi.json` and `/docs` are.")


class ApprovalBody(BaseModel):
    decision: Literal["approve", "reject"]
    comment: str = Field("", max_length=2000)
    content_hash: str | None = Field(None, description="the release content hash you reviewed; refused if stale")
    plan_hash: str | None = Field(None, max_length=100,
                                  description="the deployment plan hash you reviewed (`plan.hash` of GET "
                                              "/promotions/{id}); an approval is refused (409) if the live plan "
                                              "differs")


class PromotionDetail(BaseModel):
    """One promotion (the other fields as the list gives them, plus gates, approval attempts, why
    and, while it waits for approval, the live plan)."""

    model_config = ConfigDict(extra="allow")
    canary: CanaryProgress | None = Field(
        None, description="a canary environment's promotion: the step plan, the step it is at and its weight, the "
                          "split the router last reported, each step's analysis and decision (who made it), and "
                          "since when a step waits for a human; null for other strategies")


class AbortBody(BaseModel):
    reason: str = Field(..., max_length=2000, description="why; recorded in the audit log and the evidence")


def _estate():
    from stella_operators.estate.loader import cached_estate

    return cached_estate(estate_path())


def _ledger() -> FullLedger:
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


def _live_plan(estate: Estate, ledger: ApprovalLedger, promo: Promotion) -> dict[str, Any]:
    """What deploying the promotion would change now, read live from its targets (unreadable
    hosts are rows saying so, never an error)."""
    from stella_operators.approvals.plans import live_plan
    from stella_operators.operators.base import build_target

    return live_plan(estate, ledger, promo, build_target).to_dict()


def _promotion_view(ledger: ApprovalLedger, estate: Estate, promo: Promotion) -> dict[str, Any]:
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


# Query and path values are checked here, so a bad one answers 422 naming the rule or the allowed
# values (FastAPI's validation error), never a 500 from deeper down.
_NAME = r"^[a-z][a-z0-9-]{0,62}$"  # app and environment names, as in the estate
_ID = Path(max_length=200, description="id as the ledger gave it")


@app.get("/api/v1/promotions")
def list_promotions(user: GetUserDep,
                    status_: PromotionStatus = Query(PromotionStatus.AWAITING_APPROVAL, alias="status"),
                    app_: str | None = Query(None, alias="app", pattern=_NAME),
                    environment: str | None = Query(None, pattern=_NAME)) -> dict[str, Any]:
    ledger, estate = _ledger(), _estate()
    promos = ledger.promotions_with_status(status_, app=app_, environment=environment)
    return {"promotions": [_promotion_view(ledger, estate, p) for p in promos]}


@app.get("/api/v1/promotions/{promotion_id}", response_model=PromotionDetail)
def get_promotion(user: GetUserDep, promotion_id: Annotated[str, _ID]) -> dict[str, Any]:
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
    view["canary"] = canary_progress(estate, ledger, promo)
    if str(promo.status) == "awaiting_approval":
        view["plan"] = _live_plan(estate, ledger, promo)
    return view


@app.get("/api/v1/promotions/{promotion_id}/plan")
def get_plan(user: GetUserDep, promotion_id: Annotated[str, _ID]) -> dict[str, Any]:
    """Per target, what deploying the promotion's release would change now (current -> new digest;
    start / replace / restart / keep), read live; the plan recorded when its approval wait began;
    and the plan hash each counted approval approved."""
    from stella_operators.approvals.plans import plan_shown
    from stella_operators.ledger import NotFound

    ledger, estate = _ledger(), _estate()
    try:
        promo = ledger.get_promotion(promotion_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no promotion {promotion_id}") from None
    shown = plan_shown(ledger, promotion_id)
    return {"promotion_id": promotion_id, "status": str(promo.status), "live": _live_plan(estate, ledger, promo),
            "shown_when_waiting": shown.to_dict() if shown is not None else None,
            "approved": [{"approver": a.approver, "plan_hash": a.plan_hash, "evidence_id": a.evidence_id}
                         for a in ledger.approvals_for(promotion_id) if a.counted and a.decision == "approve"]}


@app.post("/api/v1/promotions/{promotion_id}/approvals")
def approve(promotion_id: Annotated[str, _ID], body: ApprovalBody, request: Request, user: GetUserDep) -> JSONResponse:
    from stella_operators.approvals.policy import BOUND_TO_OTHER_RELEASE, CLOSED, PLAN_CHANGED
    from stella_operators.approvals.service import submit_approval
    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger import NotFound
    from stella_operators.operators.base import build_target
    from stella_operators.sensors.approval_input import wake_approval_sensor

    _csrf_guard(request)
    ledger, estate = _ledger(), _estate()
    try:
        result = submit_approval(estate, ledger, SigningKeyHook().get_conn(), promotion_id, _approver(user),
                                 body.decision, body.comment, body.content_hash, targets=build_target,
                                 plan_hash=body.plan_hash)
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
    if result.plan is not None:
        payload["plan"] = result.plan.to_dict()
    if result.refusal == PLAN_CHANGED:
        live_hash = result.plan.hash if result.plan is not None else "another plan"
        payload["detail"] = (f"the plan changed: you reviewed plan {body.plan_hash}, the hosts now give "
                             f"{live_hash}; reload, review what will change, and approve again")
    if result.refusal in (BOUND_TO_OTHER_RELEASE, CLOSED, PLAN_CHANGED):
        return JSONResponse(payload, status_code=status.HTTP_409_CONFLICT)
    if result.refusal and not result.duplicate:
        return JSONResponse(payload, status_code=status.HTTP_403_FORBIDDEN)
    return JSONResponse(payload, status_code=status.HTTP_201_CREATED if result.counted else status.HTTP_200_OK)


@app.post("/api/v1/promotions/{promotion_id}/abort")
def abort(promotion_id: Annotated[str, _ID], body: AbortBody, request: Request, user: GetUserDep) -> dict[str, Any]:
    """End a waiting or stuck promotion: `cancelled`, or rolled back if it was deploying. Only its
    requester, an approver of its environment or an admin may. 403: not allowed (the body says who
    may); 409: already finished, or its deploy task is alive; 422: no reason given."""
    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger import NotFound
    from stella_operators.operators.base import build_target
    from stella_operators.promotion.abort import AbortConflict, AbortRefused, abort_promotion

    _csrf_guard(request)
    ledger, estate = _ledger(), _estate()
    try:
        result = abort_promotion(estate, ledger, SigningKeyHook().get_conn(), promotion_id, _approver(user),
                                 body.reason, build_target)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no promotion {promotion_id}") from None
    except AbortRefused as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from None
    except AbortConflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    if result.from_status == "awaiting_approval":
        from stella_operators.sensors.approval_input import wake_approval_sensor

        wake_approval_sensor(ledger, promotion_id)  # its parked sensor ends the run now, not at its deadline
    view = _promotion_view(ledger, estate, ledger.get_promotion(promotion_id))
    view["abort"] = {"by": user.get_name(), "from_status": result.from_status, "evidence_id": result.evidence_id,
                     "not_restored": list(result.not_restored)}
    return view


@app.get("/api/v1/evidence/{evidence_id}")
def get_evidence(user: GetUserDep, evidence_id: Annotated[str, _ID]) -> JSONResponse:
    import json

    from stella_operators.ledger import NotFound

    try:
        record = _ledger().get_evidence(evidence_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evidence {evidence_id}") from None
    return JSONResponse(json.loads(record.to_file_json()),
                        headers={"Content-Disposition": f'attachment; filename="{evidence_id.replace(":", "-")}.json"'})


@app.get("/api/v1/promotions/{promotion_id}/bundle")
def get_bundle(user: GetUserDep, promotion_id: Annotated[str, _ID]) -> Response:
    """Every evidence record of the promotion, its release, the public keys and a signed manifest, as a tar
    that `stella evidence verify BUNDLE --trust DIR` checks with no ledger and no network."""
    from stella_operators.evidence.bundle import export_bundle
    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger import NotFound

    try:
        data = export_bundle(_ledger(), SigningKeyHook().get_conn(), promotion_id, exported_by=user.get_name())
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no promotion {promotion_id}") from None
    name = f"stella-bundle-{promotion_id.replace(':', '-')}.tar"
    return Response(data, media_type="application/x-tar",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@app.get("/api/v1/board")
def release_board(user: GetUserDep, limit: int = Query(30, ge=1, le=500)) -> dict[str, Any]:
    """Environments x apps with the verified release, each target's own state (an environment whose
    hosts disagree is `degraded`), plus the promotion timeline with who approved."""
    return board(_estate(), _ledger(), limit)


@app.get("/api/v1/drift")
def drift_checks(user: GetUserDep) -> dict[str, Any]:
    """The last drift check of every app in every environment (null: never checked)."""
    from stella_operators.drift.service import last_drift_check

    estate, ledger = _estate(), _ledger()
    return {"checks": [{"app": a.name, "environment": e.name, "last": last_drift_check(ledger, a.name, e.name)}
                       for a in estate.apps for e in estate.app_environments(a.name)]}


@app.get("/ui/releases", response_class=HTMLResponse)
def releases_page(user: GetUserDep) -> str:
    return RELEASES_PAGE


@app.get("/ui/approvals", response_class=HTMLResponse)
def approvals_page(user: GetUserDep) -> str:
    return APPROVALS_PAGE


# -- what the pages read (read-only) --------------------------------------------------------------


@app.get("/api/v1/ui/approvals")
def approvals_for_page(user: GetUserDep,
                       promotion: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """Waiting promotions (or one, whatever its status) as the signed-in user sees them: current ->
    new per component, gate verdicts, requester and reason, and whether this user may decide."""
    from stella_operators.ledger import NotFound

    ledger, estate, me = _ledger(), _estate(), _approver(user)
    try:
        promos = [ledger.get_promotion(promotion)] if promotion else ledger.promotions_with_status("awaiting_approval")
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no promotion {promotion}") from None
    return {"user": me.user, "promotions": [
        approval_card(estate, ledger, p, me,
                      plan=_live_plan(estate, ledger, p) if str(p.status) == "awaiting_approval" else None)
        for p in promos]}


@app.get("/api/v1/ui/board")
def board_for_page(user: GetUserDep, limit: int = Query(30, ge=1, le=500)) -> dict[str, Any]:
    return board(_estate(), _ledger(), limit)


@app.get("/api/v1/ui/why/{promotion_id}")
def why_for_page(promotion_id: Annotated[str, _ID], user: GetUserDep) -> dict[str, Any]:
    """Why a promotion stands where it does, in sentences."""
    from stella_operators.ledger import NotFound

    ledger = _ledger()
    try:
        promo = ledger.get_promotion(promotion_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no promotion {promotion_id}") from None
    estate = _estate()
    plan = _live_plan(estate, ledger, promo) if str(promo.status) == "awaiting_approval" else None
    return {"promotion_id": promotion_id, "status": str(promo.status),
            "sentences": why_sentences(estate, ledger, promo, plan=plan)}


@app.get("/ui/evidence/{evidence_id}", response_class=HTMLResponse)
def evidence_page(evidence_id: Annotated[str, _ID], user: GetUserDep) -> str:
    from stella_operators.evidence.trust import TrustStoreError
    from stella_operators.hooks.trust import TrustStoreHook
    from stella_operators.ledger import NotFound

    try:
        trust: Any = TrustStoreHook().get_conn()
    except TrustStoreError as exc:
        trust = exc
    try:
        return render_evidence_page(evidence_view(_ledger(), evidence_id, trust))
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no evidence {evidence_id}") from None
