"""The plan people approve: per target, what deploying a release would change there now.

    preview_plan(estate, release, environment, targets) -> DeploymentPlan

Facts are read live from every target of the environment, in parallel, each with a short time
limit; a target that cannot be read is a row saying so ("could not read host X: reason") and its
plan is *unknown* -- never an error page. The plan's hash (`DeploymentPlan.hash`) covers the
release's content hash, the environment and every row (for an unknown row only the fact that it
is unknown: the error text varies from read to read), so two reads of an unchanged estate give
the same hash and any change -- a digest, an action, a component appearing -- gives another.

The same rows are built at deploy time from the facts the deployment reads anyway
(`plan_from_facts`), and `plan_differences` says, in sentences, how the live plan differs from an
approved one. No ledger here; approvals/plans.py stores and reads plans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING, Any

from stella_operators.deploy.planner import plan_deployment
from stella_operators.evidence.canonical import canonical_json, sha256_hex
from stella_operators.targets.diff import TargetDiff, diff, same_plan

if TYPE_CHECKING:
    from stella_operators.estate.models import Estate, TargetConfig
    from stella_operators.release.model import Release
    from stella_operators.targets.contract import Target, TargetFacts, TargetPlan

# Per target, for pages and REST calls: a host that does not answer in this time is shown as
# unknown instead of holding the page.
PREVIEW_TIMEOUT_S = 5.0
PREVIEW_ID = "preview"  # deployment/promotion id of the plans a preview diffs against (never deployed)


@dataclass(frozen=True)
class PlanRow:
    """One target's part of the plan: its diff, or why it could not be read (unknown)."""

    target: str
    diff: TargetDiff | None = None
    error: str | None = None

    @property
    def known(self) -> bool:
        return self.diff is not None

    def hashed(self) -> dict[str, Any]:
        return self.diff.to_dict() if self.diff is not None else {"target": self.target, "unknown": True}

    def to_dict(self) -> dict[str, Any]:
        if self.diff is not None:
            return {**self.diff.to_dict(), "sentences": self.diff.sentences()}
        return {"target": self.target, "unknown": True, "error": self.error,
                "sentences": [self.unknown_sentence()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanRow:
        if data.get("unknown"):
            return cls(target=data["target"], error=data.get("error"))
        return cls(target=data["target"], diff=TargetDiff.from_dict(data))

    def unknown_sentence(self) -> str:
        reason = self.error or "no reason given"
        return f"could not read host {self.target}: {reason}; what would change there is unknown"


@dataclass(frozen=True)
class DeploymentPlan:
    """What deploying `content_hash` into `environment` would change, target by target."""

    environment: str
    release_id: str
    content_hash: str
    rows: tuple[PlanRow, ...]

    @property
    def hash(self) -> str:
        return "sha256:" + sha256_hex(canonical_json({
            "environment": self.environment, "content_hash": self.content_hash,
            "targets": [r.hashed() for r in self.rows]}))

    @property
    def unknown(self) -> list[str]:
        return [r.target for r in self.rows if not r.known]

    @property
    def changed(self) -> bool:
        return any(r.diff is None or r.diff.changed for r in self.rows)

    def row(self, target: str) -> PlanRow | None:
        return next((r for r in self.rows if r.target == target), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON for REST, the pages, the ledger and evidence (digests and host names; no secret)."""
        return {"hash": self.hash, "environment": self.environment, "release_id": self.release_id,
                "content_hash": self.content_hash, "unknown": self.unknown,
                "targets": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentPlan:
        return cls(environment=data["environment"], release_id=data["release_id"],
                   content_hash=data["content_hash"],
                   rows=tuple(PlanRow.from_dict(r) for r in data["targets"]))

    def lines(self) -> list[str]:
        """One line per target and component, as `stella why` and `stella approve` print them."""
        out = []
        for r in self.rows:
            if r.diff is None:
                out.append(r.unknown_sentence())
            else:
                out += [f"{r.target}: {s}" for s in r.diff.sentences()]
        return out


def plan_from_facts(plans: Iterable[TargetPlan], facts: Mapping[str, TargetFacts | str], *, environment: str,
                    release: Release) -> DeploymentPlan:
    """Rows from facts already read (a string instead of facts: the error reading that target)."""
    rows = []
    for plan in plans:
        got = facts.get(plan.target, "not read")
        rows.append(PlanRow(plan.target, error=got) if isinstance(got, str) else PlanRow(plan.target, diff(got, plan)))
    return DeploymentPlan(environment, release.id, release.content_hash, tuple(rows))


def preview_plan(estate: Estate, release: Release, environment: str,
                 targets: Callable[[TargetConfig], Target], *,
                 timeout_s: float = PREVIEW_TIMEOUT_S) -> DeploymentPlan:
    """Read every target's facts now (in parallel, `timeout_s` in all) and diff them against the release."""
    env = estate.environment(environment)
    plans = plan_deployment(estate, release, environment=env.name, promotion_id=PREVIEW_ID,
                            deployment_id=PREVIEW_ID)

    def read(config: TargetConfig) -> TargetFacts:
        return targets(config).facts(release.app)

    facts: dict[str, TargetFacts | str] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(16, len(env.targets))), thread_name_prefix="stella-preview")
    try:
        futures = {t.name: pool.submit(read, t) for t in env.targets}
        deadline = monotonic() + timeout_s
        for name, fut in futures.items():
            try:
                facts[name] = fut.result(timeout=max(0.0, deadline - monotonic()))
            except FutureTimeout:
                facts[name] = f"no answer within {timeout_s:g} s"
            except Exception as exc:  # noqa: BLE001 - any failure to read is shown as that row's reason
                facts[name] = _reason(exc)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a hung read must not hold the page
    return plan_from_facts(plans, facts, environment=env.name, release=release)


def plan_differences(approved: DeploymentPlan, live: DeploymentPlan) -> list[str]:
    """How `live` differs from `approved`, one sentence per target (empty: the same plan).

    A target that was unknown when approved accepts what is found there now (the approver saw
    that it was unknown and approved anyway); a target that cannot be read now is a difference.
    """
    out = []
    if approved.content_hash != live.content_hash:
        out.append(f"the release changed: approved {approved.content_hash}, now {live.content_hash}")
    for row in live.rows:
        before = approved.row(row.target)
        if row.diff is None:
            out.append(row.unknown_sentence())
        elif before is None:
            out.append(f"{row.target}: not in the approved plan")
        elif before.diff is not None and not same_plan(before.diff, row.diff):
            out += _target_differences(before.diff, row.diff)
    for row in approved.rows:
        if live.row(row.target) is None:
            out.append(f"{row.target}: in the approved plan, no longer a target")
    return out


def _target_differences(approved: TargetDiff, live: TargetDiff) -> list[str]:
    """Per component, in full digests (the short forms in the rows may look alike)."""
    out = []
    was = {c.component: c for c in approved.changes}
    for c in live.changes:
        a = was.get(c.component)
        if a is None:
            out.append(f"{live.target}: {c.component} was not in the approved plan")
        elif a.current != c.current:
            out.append(f"{live.target}: {c.component} ran {a.current or 'nothing'} when approved, "
                       f"runs {c.current or 'nothing'} now")
        elif (a.new, a.action) != (c.new, c.action):
            out.append(f"{live.target}: {c.component} was to be {ACTION_WORDS[a.action]}, "
                       f"would be {ACTION_WORDS[c.action]} now")
    if approved.unmanaged != live.unmanaged:
        out.append(f"{live.target}: other components of the app ran {', '.join(approved.unmanaged) or 'none'} "
                   f"when approved, run {', '.join(live.unmanaged) or 'none'} now")
    return out or [f"{live.target}: the plan changed"]


ACTION_WORDS = {"start": "started", "replace": "replaced", "restart": "restarted (it was unhealthy)",
                "keep": "left alone"}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300].rstrip(".")  # it ends a clause of the row's sentence
