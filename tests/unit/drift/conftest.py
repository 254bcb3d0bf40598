"""The promotion world (SQLite ledger, in-memory hosts, a clock the test moves) for drift tests."""

from tests.unit.promotion.conftest import Clock, clock, world

__all__ = ["Clock", "clock", "world"]
