"""Check an app's targets in one environment for drift and record the outcome in the ledger.

Every check is an audit event on subject `drift:<app>/<env>` (`drift.detected` with each finding,
or `drift.none`), so the Releases page and `stella status` show when it was last checked and what
was found, and the hash chain keeps it. Nothing is changed on the targets: drift is reported,
never fixed silently (a promotion or the rollback DAG fixes it, with evidence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from stella_operators.drift.compare import DriftFinding, compare_target
from stella_operators.estate.models import Environment, Estate, TargetConfig
from stella_operators.ledger.protocols import AuditLog, DeployLocks, DeploymentBook, PromotionBook, ReleaseBook
from stella_operators.promotion import ab

if TYPE_CHECKING:
    from stella_operators.targets.contract import Target

DETECTED, NONE = "drift.detected", "drift.none"


class DriftLedger(ReleaseBook, PromotionBook, DeploymentBook, DeployLocks, AuditLog, Protocol):
    """What a drift check reads (verified release, deploy lock) and writes (one audit event)."""


class DeploymentInProgress(RuntimeError):
    """A promotion holds the deploy lock here: its targets are changing on purpose; not checked."""


def drift_subject(app: str, environment: str) -> str:
    return f"drift:{app}/{environment}"


@dataclass
class DriftReport:
    app: str
    environment: str
    release_id: str | None
    release_name: str | None
    checked_at: datetime
    findings: list[DriftFinding] = field(default_factory=list)
    observed: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return bool(self.findings)

    def message(self) -> str:
        where = f"{self.app} in {self.environment}"
        if not self.drifted:
            return (f"no drift: every target of {where} runs {self.release_name}" if self.release_name
                    else f"no drift: nothing was verified for {where} and nothing of it runs")
        expected = self.release_name or "no verified release"
        return (f"drift in {where} (expected {expected}): "
                + "; ".join(f.sentence() for f in self.findings))

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.app, "environment": self.environment, "status": "drift" if self.drifted else "ok",
                "release_id": self.release_id, "release_name": self.release_name,
                "checked_at": self.checked_at.isoformat(), "findings": [f.to_dict() for f in self.findings],
                "observed": self.observed, "message": self.message()}


def check_drift(estate: Estate, ledger: DriftLedger, app: str, environment: str,
                targets: Callable[[TargetConfig], Target], *, actor: str = "stella",
                run: dict[str, str] | None = None, now: datetime | None = None) -> DriftReport:
    """Read every target's facts, compare with the release last verified here, record the outcome.

    Raises DeploymentInProgress (nothing recorded) while a live promotion holds the deploy lock: a
    deployment changes the targets on purpose, and its own verification checks them.
    """
    env = estate.environment(environment)
    lock = ledger.deploy_lock(app, environment, scope=env.lock_scope)
    if lock is not None and not ledger.deploy_lock_is_stale(lock):
        raise DeploymentInProgress(f"promotion {lock.promotion_id} is deploying {app} in {environment}; "
                                   "the drift check runs again on its next schedule")
    release = ledger.deployed_release(app, environment)
    report = DriftReport(app, environment, release.id if release else None, release.name if release else None,
                         now or datetime.now(UTC))
    idle = _idle_targets(env, ledger, app)
    for config in env.targets:
        try:
            facts = targets(config).facts(app)
        except Exception as exc:  # noqa: BLE001 - cannot look: reported as drift, naming the host
            report.findings.append(DriftFinding(config.name, "unreachable", detail=str(exc) or type(exc).__name__))
            continue
        report.observed[config.name] = facts.digests()
        if config.name in idle:  # must run nothing of the app
            report.findings += [DriftFinding(config.name, "unmanaged", name, running=rc.digest,
                                             detail=idle[config.name]) for name, rc in sorted(facts.components.items())]
            continue
        report.findings += compare_target(facts, release, environment)
    detail = report.to_dict()
    if run:
        detail["run"] = run
    ledger.audit(actor, DETECTED if report.drifted else NONE, drift_subject(app, environment), detail)
    return report


def _idle_targets(env: Environment, ledger: DriftLedger, app: str) -> dict[str, str]:
    """Targets the last verified deployment left idle on purpose (strategy ab: group A, stopped),
    with why: they must run nothing of the app."""
    if env.strategy != "ab":
        return {}
    promo = ledger.latest_promotion(app, env.name, "deployed")
    deps = [d for d in ledger.deployments_for(promo.id) if d.status == "succeeded"] if promo is not None else []
    return ab.left_out(env, ledger, deps[-1].id) if deps else {}


class DriftReader(PromotionBook, AuditLog, Protocol):
    """What the pages read: the last check, and the last verified deployment (which supersedes it)."""


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def last_drift_check(ledger: DriftReader, app: str, environment: str) -> dict[str, Any] | None:
    """The last recorded drift check of (app, environment) as the pages show it, or None. Drift found
    before the latest verified deployment is `superseded`: that deployment's verification read
    every target since, and the next check looks again."""
    events = [e for e in ledger.audit_events(drift_subject(app, environment)) if e.action in (DETECTED, NONE)]
    if not events:
        return None
    e = events[-1]
    verified = ledger.latest_promotion(app, environment, "deployed")
    verified_at = (verified.updated_at or verified.requested_at) if verified is not None else None
    return {"status": "drift" if e.action == DETECTED else "ok", "checked_at": _utc(e.at).isoformat(),
            "checked_by": e.actor, "release_name": e.detail.get("release_name"),
            "findings": [f.get("sentence", "") for f in e.detail.get("findings", [])],
            "message": e.detail.get("message", ""), "run": e.detail.get("run"),
            "superseded": verified_at is not None and _utc(verified_at) > _utc(e.at)}
