"""Automatic promotions (`auto_promote: true`): trust the ledger, not the Asset event that started the run.

An environment with `auto_promote` is scheduled on its upstream environments' "verified" Assets.
Anyone allowed to post Asset events (REST `POST /api/v2/assets/events`) can start such a run, and
the event's `extra` is whatever they wrote. So the event is only a pointer: it must name the
upstream promotion (`promotion_id`, which VerifyPromotionOperator puts there), and the ledger
decides whether that promotion is one this environment may follow:

* it exists, is of the same app, went into an upstream environment of this one, is `deployed`
  (verified), and its release is the release that upstream environment verified last;
* a release the event names must be that promotion's release; a DAG run that posted it must be
  the one the promotion ran in.

The new promotion is requested on behalf of the upstream promotion's requester, so separation of
duties still holds (they may not approve it), and records who posted the event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stella_operators.estate.models import Estate
from stella_operators.evidence.canonical import iso_utc
from stella_operators.ledger.errors import NotFound
from stella_operators.promotion.model import Promotion
from stella_operators.promotion.service import PromotionRefused
from stella_operators.promotion.state import PromotionStatus

if TYPE_CHECKING:
    from stella_operators.ledger.protocols import PromotingLedger


@dataclass(frozen=True)
class UpstreamEvent:
    """What Airflow recorded about one triggering Asset event (read from the task context)."""

    asset: str
    extra: dict[str, Any] = field(default_factory=dict)
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_task_id: str | None = None
    timestamp: datetime | None = None

    def posted_by(self) -> dict[str, Any]:
        """Who posted it, as Airflow recorded it (a REST call records no source and no user)."""
        when = iso_utc(self.timestamp) if self.timestamp else None
        if self.source_dag_id:
            return {"via": "task", "dag_id": self.source_dag_id, "run_id": self.source_run_id,
                    "task_id": self.source_task_id, "at": when}
        return {"via": "rest_api", "note": "Airflow records no source and no user for events posted through "
                                           "its REST API; its audit log has the call at this time", "at": when}


@dataclass(frozen=True)
class AutoPromotion:
    """The checked outcome: which release to request, on whose behalf, and what to record."""

    upstream: Promotion
    release_id: str
    requested_by: str
    trigger: dict[str, Any]


def check_upstream_event(estate: Estate, ledger: PromotingLedger, app: str, environment: str,
                         events: list[UpstreamEvent]) -> AutoPromotion:
    """Check the newest triggering event against the ledger; PromotionRefused says what is wrong.

    Older events of the same run are superseded: the upstream environment verified something
    newer since, and only the newest verified release moves on.
    """
    if not events:
        raise PromotionRefused(f"no Asset event started this run of {app}/{environment}; an automatic "
                               "promotion follows a promotion verified upstream")
    event = max(events, key=lambda e: (e.timestamp is not None, e.timestamp or datetime.min))
    where = f"the Asset event on {event.asset} ({_describe(event)})"
    pid = event.extra.get("promotion_id")
    if not isinstance(pid, str) or not pid:
        named = event.extra.get("release_id") or event.extra.get("release_name")
        raise PromotionRefused(
            f"{where} names no upstream promotion (extra.promotion_id){f' but release {named!r}' if named else ''}: "
            f"automatic promotions of {app} into {environment} follow only a promotion verified upstream; "
            f"nothing was requested. To promote a chosen release, trigger stella_promote__{app}__{environment}")
    try:
        upstream = ledger.get_promotion(pid)
    except NotFound:
        raise PromotionRefused(f"{where} names promotion {pid!r}, which the ledger does not know; "
                               "nothing was requested") from None
    _check(estate, ledger, app, environment, upstream, event, where)
    release = ledger.get_release(upstream.release_id)
    trigger = {
        "kind": "asset_event",
        "asset": event.asset,
        "upstream_promotion": upstream.id,
        "upstream_environment": upstream.environment,
        "upstream_requested_by": upstream.requested_by,
        "release_id": release.id,
        "release_name": release.name,
        "posted_by": event.posted_by(),
    }
    return AutoPromotion(upstream=upstream, release_id=release.id, requested_by=upstream.requested_by,
                         trigger=trigger)


def _check(estate: Estate, ledger: PromotingLedger, app: str, environment: str, upstream: Promotion,
           event: UpstreamEvent,
           where: str) -> None:
    pid = upstream.id
    if upstream.app != app:
        raise PromotionRefused(f"{where} names promotion {pid} of app {upstream.app!r}, not {app!r}; "
                               "nothing was requested")
    allowed = estate.upstream(environment)
    if upstream.environment not in allowed:
        raise PromotionRefused(f"{where} names promotion {pid} into {upstream.environment!r}, which is not "
                               f"upstream of {environment} (upstream: {', '.join(allowed) or 'none'}); "
                               "nothing was requested")
    if upstream.status != PromotionStatus.DEPLOYED:
        raise PromotionRefused(f"{where} names promotion {pid}, which is {upstream.status}, not deployed "
                               f"(verified) in {upstream.environment}; nothing was requested")
    named = event.extra.get("release_id")
    if named is not None and named != upstream.release_id:
        raise PromotionRefused(f"{where} says release {named!r}, but promotion {pid} deployed "
                               f"{upstream.release_id!r}; nothing was requested")
    latest = ledger.deployed_release(app, upstream.environment)
    if latest is None or latest.id != upstream.release_id:
        raise PromotionRefused(
            f"{where} names promotion {pid} of release {upstream.release_id}, but the release "
            f"{upstream.environment} verified last is {latest.name + ' (' + latest.id + ')' if latest else 'none'}: "
            "only the newest verified release moves on automatically; nothing was requested")
    if event.source_dag_id and upstream.dag_id and (event.source_dag_id, event.source_run_id) != (
            upstream.dag_id, upstream.run_id):
        raise PromotionRefused(f"{where} was posted by {event.source_dag_id}/{event.source_run_id}, but "
                               f"promotion {pid} ran as {upstream.dag_id}/{upstream.run_id}; nothing was requested")


def _describe(event: UpstreamEvent) -> str:
    if event.source_dag_id:
        return f"posted by task {event.source_dag_id}/{event.source_run_id}/{event.source_task_id}"
    return "posted through the REST API"
