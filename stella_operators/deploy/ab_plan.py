"""The stage plan of an A/B deployment by target groups (`strategy: ab`), pure arithmetic.

Group A runs the app now, group B gets the release. After stage k, whose share is s_k percent:

    B targets running the release   up(k)   = ceil(|B| * s_k / 100)
    A targets stopped               down(k) = floor(|A| * s_k / 100)

in estate order. Rounding always errs towards capacity: B rounds up (more new workers sooner), A
rounds down (fewer old ones stopped). With every B target healthy, the share of the fleet that
works, `running A / |A| + healthy B / |B|`, therefore never drops below 100 % (B's share starts
before A's stops); a stage whose health threshold is t promises at least `(100 - s_k) + s_k * t / 100`
percent once its A share stopped (`promised_capacity`). No Airflow, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class AbStage:
    index: int                       # 0-based; people see `stage index + 1`
    share: int                       # percent of the fleet on B after this stage
    threshold: float                 # percent of B's started targets that must stay healthy
    up: tuple[str, ...]              # B targets this stage starts
    down: tuple[str, ...]            # A targets this stage stops
    running_b: tuple[str, ...]       # every B target running after this stage
    stopped_a: tuple[str, ...]       # every A target stopped after this stage

    @property
    def promised_capacity(self) -> float:
        """Percent of the fleet working at the end of the stage when B just meets the threshold."""
        return (100 - self.share) + self.share * self.threshold / 100


@dataclass(frozen=True)
class AbPlan:
    group_a: str | None              # the group running the app before (None: nobody ran it yet)
    group_b: str                     # the group receiving the release
    a_targets: tuple[str, ...]
    b_targets: tuple[str, ...]
    stages: tuple[AbStage, ...]
    wait_s: float = 0.0

    def stage(self, index: int) -> AbStage:
        return self.stages[index]

    def to_dict(self) -> dict[str, object]:
        """What the audit log keeps of the plan (a later stage task reads the groups back)."""
        return {"group_a": self.group_a, "group_b": self.group_b, "a_targets": list(self.a_targets),
                "b_targets": list(self.b_targets)}


def stage_counts(n_a: int, n_b: int, share: int) -> tuple[int, int]:
    """(B targets up, A targets down) after a stage of `share` percent (module docstring)."""
    up = math.ceil(n_b * share / 100 - 1e-9)
    down = math.floor(n_a * share / 100 + 1e-9)
    return min(n_b, up), min(n_a, down)


def plan_ab(a_targets: Sequence[str], b_targets: Sequence[str], shares: Sequence[int], thresholds: Sequence[float],
            *, group_a: str | None, group_b: str, wait_s: float = 0.0) -> AbPlan:
    if not b_targets:
        raise ValueError(f"group {group_b} has no targets to receive the release")
    if len(thresholds) != len(shares):
        raise ValueError(f"{len(shares)} stages but {len(thresholds)} thresholds")
    stages = []
    up_before = down_before = 0
    for k, (share, threshold) in enumerate(zip(shares, thresholds, strict=True)):
        up, down = stage_counts(len(a_targets), len(b_targets), share)
        stages.append(AbStage(index=k, share=share, threshold=threshold,
                              up=tuple(b_targets[up_before:up]), down=tuple(a_targets[down_before:down]),
                              running_b=tuple(b_targets[:up]), stopped_a=tuple(a_targets[:down])))
        up_before, down_before = up, down
    return AbPlan(group_a=group_a, group_b=group_b, a_targets=tuple(a_targets), b_targets=tuple(b_targets),
                  stages=tuple(stages), wait_s=wait_s)


def choose_groups(groups: Sequence[str], running: dict[str, list[str]]) -> tuple[str | None, str]:
    """(A, B) from which targets of each group run the app now. Raises ValueError when both do."""
    busy = [g for g in groups if running.get(g)]
    if len(busy) > 1:
        where = "; ".join(f"{g}: {', '.join(running[g])}" for g in busy)
        raise ValueError(f"both groups run the app ({where}); an A/B deployment moves it from one group to the "
                         "other, so one group must be idle: roll back the unfinished deployment, or stop the "
                         "app's workloads on one group")
    if not busy:
        return None, groups[0]
    a = busy[0]
    return a, next(g for g in groups if g != a)


def check_ab_groups(groups: Sequence[str], shares: Sequence[int], targets: Sequence[tuple[str, str | None]]) -> None:
    """Estate-load checks of an `ab:` block against the environment's targets (name, group):
    two different groups, each with targets, no target outside them, and every stage moving at
    least one target whichever group is A. Raises ValueError naming the field."""
    a, b = groups
    if a == b:
        raise ValueError(f"ab.groups names the group {a} twice; name two different target groups")
    members = {g: [n for n, group in targets if group == g] for g in groups}
    for g in groups:
        if not members[g]:
            raise ValueError(f"ab.groups: group {g} has no targets; set `group: {g}` on its targets")
    stray = [n for n, group in targets if group not in groups]
    if stray:
        raise ValueError(f"targets {', '.join(stray)} are in neither ab group ({a}, {b}); give each target "
                         "`group:` one of them")
    for first, second in ((a, b), (b, a)):
        before = (0, 0)
        for share in shares:
            now = stage_counts(len(members[first]), len(members[second]), share)
            if now == before:
                raise ValueError(
                    f"ab.stages: stage {share} moves no target from {first} ({len(members[first])} targets) to "
                    f"{second} ({len(members[second])} targets): each stage must start or stop at least one; "
                    "drop it, or use fewer, larger stages")
            before = now
