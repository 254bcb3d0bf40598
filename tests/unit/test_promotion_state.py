"""The promotion state machine: the legal path works, everything else is refused."""

import itertools

import pytest

from stella_operators.promotion.state import (
    TERMINAL_STATUSES,
    TRANSITIONS,
    IllegalTransition,
    check_transition,
)
from stella_operators.promotion.state import (
    PromotionStatus as S,
)

HAPPY = [S.REQUESTED, S.EVALUATING, S.AWAITING_APPROVAL, S.APPROVED, S.DEPLOYING, S.VERIFYING, S.DEPLOYED]


def test_happy_path_is_legal():
    for a, b in itertools.pairwise(HAPPY):
        assert check_transition(a, b) is b


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_states_have_no_exit(terminal):
    for nxt in S:
        with pytest.raises(IllegalTransition, match="terminal"):
            check_transition(terminal, nxt)


def test_skipping_deploy_or_going_back_is_refused():
    with pytest.raises(IllegalTransition, match="from approved to deployed"):
        check_transition(S.APPROVED, S.DEPLOYED)
    with pytest.raises(IllegalTransition):
        check_transition(S.DEPLOYING, S.APPROVED)
    with pytest.raises(ValueError):
        check_transition("requested", "teleported")


def test_rollback_only_after_work_started():
    assert [s for s in S if S.ROLLED_BACK in TRANSITIONS[s]] == [S.DEPLOYING, S.VERIFYING]
