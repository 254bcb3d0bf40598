"""Triggers that poll the ledger: approvals of a promotion, and an environment's deploy lock.

They only read (a trigger may run twice) and yield exactly one terminal event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from stella_operators.ledger.locks import LockScope


def _ledger(conn_id: str | None):
    from stella_operators.hooks.ledger import LedgerHook

    return LedgerHook(conn_id).get_conn()


# Airflow 3.3 fails a deferred task whose trigger fires before the scheduler has drained the
# deferring attempt's own executor event (apache/airflow#71580, #72716: the resumed attempt is
# marked failed by a stale "success"). Seen here with a lock freed 2 s after deferral. Firing no
# earlier than this many seconds after the trigger starts keeps clear of that window.
MIN_WAIT_S = 8.0


class _LedgerPollTrigger(BaseTrigger):
    """Calls `_check()` (blocking, in a thread) every `poll_interval` s until it returns an event.

    Subclasses pass their keyword arguments up; they are kept as attributes and are exactly what
    `serialize` returns, so the trigger the triggerer rebuilds is the one the task deferred with.
    """

    # Set from the keyword arguments (below); declared for type checkers.
    deadline: str
    poll_interval: float
    ledger_conn_id: str | None
    promotion_id: str

    def __init__(self, **kwargs: Any):
        super().__init__()
        self._kwargs = kwargs
        for name, value in kwargs.items():
            setattr(self, name, value)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", dict(self._kwargs)

    def _past_deadline(self) -> bool:
        return datetime.now(UTC) >= datetime.fromisoformat(self.deadline)

    def _check(self) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(MIN_WAIT_S)
        while True:
            try:
                event = await asyncio.to_thread(self._check)
            except Exception as exc:  # fail closed, with the reason
                event = {"status": "error", "error": f"{type(exc).__name__}: {exc}"}
            if event is not None:
                yield TriggerEvent(event)
                return
            await asyncio.sleep(self.poll_interval)


class ApprovalTrigger(_LedgerPollTrigger):
    """Fires when the promotion stops awaiting approval, or when the deadline passed.

    It only observes the promotion's status: the approval call that completes the quorum (or
    records a counted rejection) settles the promotion itself, in the same ledger transaction, and
    the sensor re-counts from the ledger when it resumes. The event is a hint, never the decision.

    :param promotion_id: the promotion waiting for approvals.
    :param estate_path: estate file (kept so triggers deferred by earlier versions rebuild).
    :param deadline: ISO time after which the wait fails closed (never auto-approves).
    """

    estate_path: str

    def __init__(self, promotion_id: str, estate_path: str, deadline: str, ledger_conn_id: str | None = None,
                 poll_interval: float = 2.0):
        super().__init__(promotion_id=promotion_id, estate_path=estate_path, deadline=deadline,
                         ledger_conn_id=ledger_conn_id, poll_interval=poll_interval)

    def _check(self) -> dict[str, Any] | None:
        from stella_operators.promotion.state import PromotionStatus

        status = _ledger(self.ledger_conn_id).get_promotion(self.promotion_id).status
        if status != PromotionStatus.AWAITING_APPROVAL:
            return {"status": str(status), "deadline": self.deadline}
        if self._past_deadline():
            return {"status": "timeout", "deadline": self.deadline}
        return None


class EnvironmentLockTrigger(_LedgerPollTrigger):
    """Fires when a deploy lock is free, held by this promotion already, or stale (its holder
    finished, or its lease ran out: the deploy step then takes it over and rolls the holder back).

    :param app: the app whose lock (with ``scope="app"``) is awaited; the environment's with
        ``scope="environment"``.
    """

    environment: str
    app: str
    scope: LockScope

    def __init__(self, environment: str, promotion_id: str, deadline: str, ledger_conn_id: str | None = None,
                 poll_interval: float = 2.0, app: str = "", scope: LockScope = "environment"):
        super().__init__(environment=environment, promotion_id=promotion_id, deadline=deadline,
                         ledger_conn_id=ledger_conn_id, poll_interval=poll_interval, app=app, scope=scope)

    def _check(self) -> dict[str, Any] | None:
        from stella_operators.promotion.state import TERMINAL_STATUSES

        ledger = _ledger(self.ledger_conn_id)
        own = ledger.get_promotion(self.promotion_id).status
        if own in TERMINAL_STATUSES:  # e.g. aborted while waiting: nothing left to wait for
            return {"status": "ended", "promotion_status": str(own)}
        lock = ledger.deploy_lock(self.app or "*", self.environment, scope=self.scope)
        if lock is None or lock.promotion_id == self.promotion_id or ledger.deploy_lock_is_stale(lock):
            return {"status": "free"}
        if self._past_deadline():
            return {"status": "timeout", "holder": lock.promotion_id}
        return None
