"""Promotions: a release moving into an environment, and the one state machine that governs them."""

from stella_operators.promotion.state import (
    TERMINAL_STATUSES,
    IllegalTransition,
    PromotionStatus,
    check_transition,
)

__all__ = ["IllegalTransition", "PromotionStatus", "TERMINAL_STATUSES", "check_transition"]
