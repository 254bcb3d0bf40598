"""The traffic shares of a canary's steps, from a list or a progression. Pure, no imports of ours.

    steps: [10, 50, 100]                          # as written (100 appended when missing)
    progression: {kind: linear, start: 10, step: 20}        # 10, 30, 50, 70, 90, 100
    progression: {kind: exponential, start: 5, factor: 2}   # 5, 10, 20, 40, 80, 100
    progression: {kind: fibonacci, start: 5}                # 5, 10, 15, 25, 40, 65, 100

Every share is a whole percentage in 1..100, strictly increasing, and the last one is 100: a canary
that ends below 100 % never finishes. Each step is one Airflow task, hence MAX_STEPS.
"""

from __future__ import annotations

import math

MAX_STEPS = 20


class StepPlanError(ValueError):
    """The steps make no sense; `field` names the setting (relative to the `canary:` block)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def from_steps(steps: list[int]) -> tuple[int, ...]:
    if not steps:
        raise StepPlanError("steps", "give at least one traffic share, e.g. [10, 50, 100]")
    for i, s in enumerate(steps):
        if not 1 <= s <= 100:
            raise StepPlanError(f"steps.{i}", f"{s} is not a traffic share in 1..100 (percent)")
        if i and s <= steps[i - 1]:
            raise StepPlanError(f"steps.{i}", f"{s} does not increase on the step before ({steps[i - 1]}); "
                                "each step sends more traffic to the new version than the one before")
    plan = tuple(steps) if steps[-1] == 100 else (*steps, 100)
    return _bounded(plan, "steps")


def from_progression(kind: str, start: int, *, step: int | None = None, factor: float | None = None) -> tuple[int, ...]:
    if not 1 <= start <= 100:
        raise StepPlanError("progression.start", f"{start} is not a traffic share in 1..100 (percent)")
    shares = [start]
    if kind == "linear":
        if step is None or step < 1:
            raise StepPlanError("progression.step", "a linear progression adds `step` percent (>= 1) per step")
        while shares[-1] < 100:
            shares.append(shares[-1] + step)
    elif kind == "exponential":
        if factor is None or factor <= 1:
            raise StepPlanError("progression.factor", "an exponential progression multiplies by `factor` (> 1) "
                                "per step")
        while shares[-1] < 100:  # at least +1 a step: rounding must never repeat a share
            shares.append(max(shares[-1] + 1, math.ceil(shares[-1] * factor)))
    elif kind == "fibonacci":
        a, b = 1, 2
        while shares[-1] < 100:
            shares.append(start * b)
            a, b = b, a + b
    else:
        raise StepPlanError("progression.kind", f"{kind!r} is not one of linear, exponential, fibonacci")
    plan = tuple(min(s, 100) for s in shares)
    return _bounded(plan, "progression")


def _bounded(plan: tuple[int, ...], field: str) -> tuple[int, ...]:
    if len(plan) > MAX_STEPS:
        raise StepPlanError(field, f"gives {len(plan)} steps ({', '.join(map(str, plan))}); at most {MAX_STEPS} "
                            "(one task each): take bigger steps")
    return plan


def targets_for(percent: int, total: int) -> int:
    """Router `none`: how many of `total` targets run the new version at `percent` (rounded up)."""
    return min(total, math.ceil(percent * total / 100))
