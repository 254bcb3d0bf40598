"""Ledger methods for deploy locks: one deployment at a time per (app, environment), or per
environment when the estate asks for it (`lock_scope: environment`).

A mixin that `Ledger` inherits. A lock is one mutable row keyed by (environment, app); `app` is
`*` for an environment-wide lock. The primary key makes taking one atomic (an INSERT; the loser
sees the winner). A lock carries a lease: the deploying task renews it (heartbeat) and a lock
whose lease has expired, or whose promotion has finished, is stale and is taken over by the next
promotion that asks (audited as `lock.takeover`; that promotion then recovers the stale one's
deployment, see promotion/recovery.py). Every change writes its audit event in the same
transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from stella_operators.ledger.audit import append_audit
from stella_operators.ledger.errors import LedgerError, NotFound
from stella_operators.ledger.tables import deploy_locks, promotions
from stella_operators.promotion.state import TERMINAL_STATUSES, PromotionStatus

L = deploy_locks.c
ENVIRONMENT_WIDE = "*"
DEFAULT_LEASE_S = 120.0
LockScope = Literal["app", "environment"]
# Rounds of insert-or-inspect before giving up; only reached if the lock changes hands every time we look.
_LOCK_ROUNDS = 10


@dataclass(frozen=True)
class DeployLock:
    environment: str
    app: str                 # `*`: the whole environment
    promotion_id: str
    holder: str              # e.g. "<dag_id>/<run_id>"
    acquired_at: datetime
    expires_at: datetime     # the lease: renewed by the holder's heartbeat

    @property
    def subject(self) -> str:
        return lock_subject(self.app, self.environment)


def lock_key(app: str, environment: str, scope: LockScope = "app") -> tuple[str, str]:
    """(environment, app-or-*) for a lock of `scope`."""
    if scope not in ("app", "environment"):
        raise LedgerError(f"a lock scope is 'app' or 'environment', not {scope!r}")
    return environment, (app if scope == "app" else ENVIRONMENT_WIDE)


def lock_subject(app: str, environment: str) -> str:
    return f"lock:{environment}/{app}"


def _status(conn: sa.Connection, promotion_id: str) -> PromotionStatus:
    status = conn.execute(sa.select(promotions.c.status).where(promotions.c.id == promotion_id)).scalar_one_or_none()
    if status is None:
        raise NotFound(f"no promotion with id {promotion_id!r}")
    return PromotionStatus(status)


def _record(row: Any) -> DeployLock:
    return DeployLock(environment=row.environment, app=row.app, promotion_id=row.promotion_id, holder=row.holder,
                      acquired_at=row.acquired_at, expires_at=row.expires_at)


@dataclass(frozen=True)
class LockClaim:
    """What `acquire_deploy_lock` saw: acquired (maybe by taking over a stale lock), or who holds it."""

    acquired: bool
    holder: DeployLock | None = None          # the lock as held now (ours when acquired)
    took_over: DeployLock | None = None       # the stale lock we replaced, if any
    stale_reason: str | None = None           # "finished" | "lease_expired"


class LedgerLocks:
    """Deploy locks with leases. Needs `_write`, `_read` and `_clock` from `Ledger`."""

    _clock: Callable[[], datetime]
    _write: Callable[[], Any]
    _read: Callable[[], Any]

    def acquire_deploy_lock(self, app: str, environment: str, promotion_id: str, holder: str, *,
                            scope: LockScope = "app", lease_s: float = DEFAULT_LEASE_S,
                            actor: str = "system") -> LockClaim:
        """Take the lock of (app, environment) -- or of the environment, `scope="environment"` --
        for the promotion, with a lease of `lease_s` seconds.

        The same promotion asking again gets it (a retry; the lease is renewed). A lock held by a
        finished promotion, or whose lease expired, is taken over. A finished promotion may not
        take a lock.
        """
        if not app or not environment or not holder:
            raise LedgerError("a deploy lock needs an app, an environment and a holder")
        if lease_s <= 0:
            raise LedgerError(f"a lock lease must be positive, not {lease_s!r}")
        env, key = lock_key(app, environment, scope)
        subject = lock_subject(key, env)
        for _ in range(_LOCK_ROUNDS):
            now = self._clock()
            expires = now + timedelta(seconds=lease_s)
            with self._write() as conn:
                status = _status(conn, promotion_id)
                if status in TERMINAL_STATUSES:
                    raise LedgerError(f"promotion {promotion_id} is {status.value}; a finished promotion "
                                      f"cannot lock {subject}")
                try:
                    with conn.begin_nested():
                        conn.execute(deploy_locks.insert().values(
                            environment=env, app=key, promotion_id=promotion_id, holder=holder, acquired_at=now,
                            heartbeat_at=now, expires_at=expires))
                except IntegrityError:
                    pass  # held: look at who holds it
                else:
                    append_audit(conn, actor, "lock.acquire", subject,
                                 {"promotion_id": promotion_id, "holder": holder, "lease_s": lease_s}, now)
                    return LockClaim(True, self._lock_in(conn, env, key))
                row = conn.execute(sa.select(deploy_locks).where(L.environment == env, L.app == key)
                                   .with_for_update()).one_or_none()
                if row is None:
                    continue  # released in between: try again
                if row.promotion_id == promotion_id:
                    conn.execute(deploy_locks.update().where(L.environment == env, L.app == key,
                                                             L.promotion_id == promotion_id)
                                 .values(holder=holder, heartbeat_at=now, expires_at=expires))
                    append_audit(conn, actor, "lock.reacquire", subject,
                                 {"promotion_id": promotion_id, "holder": holder, "previous_holder": row.holder}, now)
                    return LockClaim(True, self._lock_in(conn, env, key))
                held_by = _status(conn, row.promotion_id)
                if held_by in TERMINAL_STATUSES:
                    reason = "finished"
                elif row.expires_at <= now:
                    reason = "lease_expired"
                else:
                    return LockClaim(False, _record(row))
                done = conn.execute(deploy_locks.update()
                                    .where(L.environment == env, L.app == key, L.promotion_id == row.promotion_id)
                                    .values(promotion_id=promotion_id, holder=holder, acquired_at=now,
                                            heartbeat_at=now, expires_at=expires)).rowcount
                if done != 1:
                    continue
                append_audit(conn, actor, "lock.takeover", subject,
                             {"promotion_id": promotion_id, "holder": holder, "reason": reason,
                              "stale_promotion_id": row.promotion_id, "stale_status": held_by.value,
                              "stale_holder": row.holder, "stale_since": row.acquired_at,
                              "stale_expired_at": row.expires_at}, now)
                return LockClaim(True, self._lock_in(conn, env, key), took_over=_record(row), stale_reason=reason)
        raise LedgerError(f"{subject}: the lock kept changing hands; try again")

    @staticmethod
    def _lock_in(conn: sa.Connection, env: str, key: str) -> DeployLock:
        return _record(conn.execute(sa.select(deploy_locks).where(L.environment == env, L.app == key)).one())

    def renew_deploy_lock(self, app: str, environment: str, promotion_id: str, *, scope: LockScope = "app",
                          lease_s: float = DEFAULT_LEASE_S) -> bool:
        """The holder's heartbeat: extend the lease. False if the promotion no longer holds the lock
        (not audited: it runs every few seconds; acquiring and losing a lock are)."""
        env, key = lock_key(app, environment, scope)
        now = self._clock()
        with self._write() as conn:
            result = conn.execute(deploy_locks.update().where(L.environment == env, L.app == key,
                                                              L.promotion_id == promotion_id)
                                  .values(heartbeat_at=now, expires_at=now + timedelta(seconds=lease_s)))
            return bool(result.rowcount == 1)

    def release_deploy_lock(self, app: str, environment: str, promotion_id: str, *, scope: LockScope = "app",
                            actor: str = "system") -> bool:
        """Release the lock if `promotion_id` holds it (True); anyone else's release changes nothing (False)."""
        env, key = lock_key(app, environment, scope)
        now = self._clock()
        with self._write() as conn:
            row = conn.execute(sa.select(deploy_locks).where(L.environment == env, L.app == key,
                                                             L.promotion_id == promotion_id)
                               .with_for_update()).one_or_none()
            if row is None:
                return False
            conn.execute(deploy_locks.delete().where(L.environment == env, L.app == key,
                                                     L.promotion_id == promotion_id))
            append_audit(conn, actor, "lock.release", lock_subject(key, env),
                         {"promotion_id": promotion_id, "holder": row.holder, "acquired_at": row.acquired_at}, now)
        return True

    def deploy_lock(self, app: str, environment: str, *, scope: LockScope = "app") -> DeployLock | None:
        """The lock as held now, or None. It may be stale (finished holder, expired lease):
        `acquire_deploy_lock` takes such a lock over."""
        env, key = lock_key(app, environment, scope)
        with self._read() as conn:
            row = conn.execute(sa.select(deploy_locks).where(L.environment == env, L.app == key)).one_or_none()
        return _record(row) if row is not None else None

    def deploy_lock_is_stale(self, lock: DeployLock) -> bool:
        """Whether `acquire_deploy_lock` would take this lock over now."""
        if lock.expires_at <= self._clock():
            return True
        with self._read() as conn:
            return _status(conn, lock.promotion_id) in TERMINAL_STATUSES

    def locks_held_by(self, promotion_id: str) -> list[DeployLock]:
        with self._read() as conn:
            rows = conn.execute(sa.select(deploy_locks).where(L.promotion_id == promotion_id)).all()
        return [_record(r) for r in rows]
