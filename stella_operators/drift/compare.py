"""Compare one target's facts with the release the ledger last verified there: a pure function.

    compare_target(facts, release) -> [DriftFinding]

Drift is what a person changed by hand (or a host lost): a component missing or stopped, another
digest running, a component of the app running that the release does not have, the version
sticker missing or naming another digest set. The per-component part is the deploy diff
(targets/diff.py) against the release's digests, so deploy, verify and drift agree on what
"runs the release" means. A running but unhealthy component at the right digest is not drift
(its version is right); verification and the health checks report that. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stella_operators.release.model import Release
from stella_operators.targets.contract import ComponentSpec, TargetFacts, TargetPlan, VersionSticker
from stella_operators.targets.diff import diff

DriftKind = Literal["missing", "digest", "unmanaged", "sticker_missing", "sticker_other", "unreachable"]


@dataclass(frozen=True)
class DriftFinding:
    target: str
    kind: DriftKind
    component: str | None = None   # None: the target as a whole (its sticker, or it could not be read)
    expected: str | None = None    # the verified digest (or release content hash for the sticker)
    running: str | None = None     # what runs (None: nothing, or no digest we can trust)
    detail: str = ""

    def sentence(self) -> str:
        where = f"{self.target}: {self.component}" if self.component else self.target
        if self.kind == "missing":
            return f"{where}: expected {self.expected}, nothing runs"
        if self.kind == "digest":
            return f"{where}: expected {self.expected}, running {self.running or 'an image without a trusted digest'}"
        if self.kind == "unmanaged":
            return f"{where}: runs {self.running or 'an image without a trusted digest'}, not part of {self.detail}"
        if self.kind == "sticker_missing":
            return f"{where}: no version sticker (expected one for {self.detail})"
        if self.kind == "sticker_other":
            return f"{where}: the version sticker names {self.running}, expected {self.detail}"
        return f"{where}: cannot read what runs: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "kind": self.kind, "component": self.component, "expected": self.expected,
                "running": self.running, "sentence": self.sentence()}


def expected_plan(release: Release, environment: str, target: str) -> TargetPlan:
    """The release as a plan for `diff`: only the component digests matter to the comparison."""
    sticker = VersionSticker(app=release.app, release_id=release.id, release_name=release.name,
                             content_hash=release.content_hash, components=list(release.components),
                             deployment_id="drift-check", promotion_id="drift-check", environment=environment,
                             target=target, strategy="none", deployed_at="")
    return TargetPlan(app=release.app, environment=environment, target=target, deployment_id="drift-check",
                      components=tuple(ComponentSpec(component=c) for c in release.components), sticker=sticker)


def compare_target(facts: TargetFacts, release: Release | None, environment: str = "") -> list[DriftFinding]:
    """What differs between the target and `release` (None: nothing was ever verified here, so
    anything of the app that runs is unmanaged)."""
    if release is None:
        return [DriftFinding(facts.target, "unmanaged", name, running=rc.digest, detail="any verified release")
                for name, rc in sorted(facts.components.items())]
    what = f"release {release.name}"
    found: list[DriftFinding] = []
    d = diff(facts, expected_plan(release, environment, facts.target))
    for change in d.changes:
        if change.action == "start":
            found.append(DriftFinding(facts.target, "missing", change.component, expected=change.new))
        elif change.action == "replace":
            found.append(DriftFinding(facts.target, "digest", change.component, expected=change.new,
                                      running=change.current))
    for name in d.unmanaged:
        found.append(DriftFinding(facts.target, "unmanaged", name, running=facts.components[name].digest,
                                  detail=what))
    if facts.components:  # a sticker is carried by running workloads: with none running, "missing" says it all
        if facts.sticker is None:
            found.append(DriftFinding(facts.target, "sticker_missing", expected=release.content_hash, detail=what))
        elif facts.sticker.content_hash != release.content_hash:
            found.append(DriftFinding(facts.target, "sticker_other", expected=release.content_hash,
                                      running=f"{facts.sticker.release_name} ({facts.sticker.content_hash})",
                                      detail=f"{what} ({release.content_hash})"))
    return found
