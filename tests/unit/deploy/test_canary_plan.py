"""The traffic shares of canary steps, from a list or a progression."""

from __future__ import annotations

import pytest

from stella_operators.deploy.canary_plan import StepPlanError, from_progression, from_steps, targets_for


def test_steps_are_kept_and_100_is_appended_when_missing():
    assert from_steps([10, 50, 100]) == (10, 50, 100)
    assert from_steps([5, 25]) == (5, 25, 100)
    assert from_steps([100]) == (100,)


@pytest.mark.parametrize(("steps", "field", "words"), [
    ([], "steps", "at least one"),
    ([0, 50], "steps.0", "not a traffic share in 1..100"),
    ([10, 150], "steps.1", "not a traffic share"),
    ([50, 50, 100], "steps.1", "does not increase"),
    ([60, 40], "steps.1", "does not increase"),
])
def test_nonsense_steps_are_refused_naming_the_step(steps, field, words):
    with pytest.raises(StepPlanError, match=words) as exc:
        from_steps(steps)
    assert exc.value.field == field


def test_linear_exponential_and_fibonacci_progressions():
    assert from_progression("linear", 10, step=20) == (10, 30, 50, 70, 90, 100)
    assert from_progression("exponential", 5, factor=2) == (5, 10, 20, 40, 80, 100)
    assert from_progression("fibonacci", 5) == (5, 10, 15, 25, 40, 65, 100)
    # rounding never repeats a share: 1 x 1.2 would round to 1 again
    assert from_progression("exponential", 1, factor=1.2)[:3] == (1, 2, 3)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"kind": "linear", "start": 10}, "progression.step"),
    ({"kind": "exponential", "start": 10, "factor": 1.0}, "progression.factor"),
    ({"kind": "linear", "start": 0, "step": 10}, "progression.start"),
    ({"kind": "linear", "start": 1, "step": 1}, "progression"),   # 100 steps: one task each
    ({"kind": "cubic", "start": 10}, "progression.kind"),
])
def test_bad_progressions_are_refused_naming_the_field(kwargs, field):
    kind, start = kwargs.pop("kind"), kwargs.pop("start")
    with pytest.raises(StepPlanError) as exc:
        from_progression(kind, start, **kwargs)
    assert exc.value.field == field


def test_router_none_runs_the_release_on_the_share_of_targets_rounded_up():
    assert [targets_for(p, 3) for p in (10, 34, 50, 67, 100)] == [1, 2, 2, 3, 3]
    assert targets_for(10, 20) == 2
