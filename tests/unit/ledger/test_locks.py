"""Deploy locks: per (app, environment) or environment-wide, with a lease. `LockBehaviour` runs on
SQLite here and on PostgreSQL in tests/integration/test_ledger_postgres.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command

from stella_operators.ledger import Ledger, LedgerError, NotFound
from stella_operators.ledger.database import (
    alembic_config,
    current_revision,
    make_engine,
    write_transaction,
)
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.test_ledger import HAPPY_PATH, T0, make_release, race


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class LockBehaviour:
    """Subclasses provide `ledger_url` for an empty database."""

    @pytest.fixture
    def clock(self) -> Clock:
        return Clock()

    @pytest.fixture
    def ledger(self, ledger_url, clock):
        with Ledger.open(ledger_url, clock=clock) as ledger:
            yield ledger

    @staticmethod
    def deploying(ledger: Ledger, n: int, app: str = "shop", env: str = "prod"):
        release = ledger.add_release(make_release(n, app=app))
        promotion = ledger.create_promotion(app, env, release.id, "alice", "ship it", "promote", f"run-{app}-{n}")
        for status in HAPPY_PATH[:3]:
            promotion = ledger.transition(promotion.id, status, actor="alice")
        return promotion

    def test_one_holder_per_app_and_environment(self, ledger: Ledger):
        p1, p2 = self.deploying(ledger, 1), self.deploying(ledger, 2)
        other_app = self.deploying(ledger, 3, app="cart")
        assert ledger.deploy_lock("shop", "prod") is None
        assert ledger.acquire_deploy_lock("shop", "prod", p1.id, "run-1").acquired
        claim = ledger.acquire_deploy_lock("shop", "prod", p2.id, "run-2")
        assert not claim.acquired and claim.holder.promotion_id == p1.id
        # another app in the same environment is not blocked (the lock is keyed by app and environment)
        assert ledger.acquire_deploy_lock("cart", "prod", other_app.id, "run-3").acquired
        assert ledger.acquire_deploy_lock("shop", "prod", p1.id, "run-1 try 2").acquired  # a retry
        assert ledger.deploy_lock("shop", "prod").holder == "run-1 try 2"
        assert ledger.release_deploy_lock("shop", "prod", p2.id) is False
        assert ledger.release_deploy_lock("shop", "prod", p1.id) is True
        assert ledger.release_deploy_lock("shop", "prod", p1.id) is False
        assert ledger.acquire_deploy_lock("shop", "prod", p2.id, "run-2").acquired
        assert [(e.action, e.detail["promotion_id"]) for e in ledger.audit_events("lock:prod/shop")] == [
            ("lock.acquire", p1.id), ("lock.reacquire", p1.id), ("lock.release", p1.id), ("lock.acquire", p2.id)]
        with pytest.raises(NotFound):
            ledger.acquire_deploy_lock("shop", "dev", "prm-missing", "x")

    def test_environment_wide_lock_blocks_every_app(self, ledger: Ledger):
        shop, cart = self.deploying(ledger, 1), self.deploying(ledger, 2, app="cart")
        assert ledger.acquire_deploy_lock("shop", "prod", shop.id, "run-1", scope="environment").acquired
        claim = ledger.acquire_deploy_lock("cart", "prod", cart.id, "run-2", scope="environment")
        assert not claim.acquired and claim.holder.promotion_id == shop.id and claim.holder.app == "*"
        assert ledger.deploy_lock("cart", "prod", scope="environment").promotion_id == shop.id
        assert ledger.audit_events("lock:prod/*")[0].action == "lock.acquire"
        with pytest.raises(LedgerError, match="scope"):
            ledger.deploy_lock("cart", "prod", scope="galaxy")

    def test_lock_of_a_finished_promotion_is_taken_over(self, ledger: Ledger):
        p1, p2 = self.deploying(ledger, 1), self.deploying(ledger, 2)
        assert ledger.acquire_deploy_lock("shop", "prod", p1.id, "run-1").acquired
        ledger.transition(p1.id, S.FAILED, actor="scheduler")  # died without releasing
        with pytest.raises(LedgerError, match="finished promotion"):
            ledger.acquire_deploy_lock("shop", "prod", p1.id, "run-1")
        claim = ledger.acquire_deploy_lock("shop", "prod", p2.id, "run-2")
        assert claim.acquired and claim.took_over.promotion_id == p1.id and claim.stale_reason == "finished"
        takeover = ledger.audit_events("lock:prod/shop")[-1]
        assert takeover.action == "lock.takeover"
        assert takeover.detail["stale_promotion_id"] == p1.id and takeover.detail["stale_status"] == "failed"

    def test_expired_lease_is_taken_over_and_a_heartbeat_keeps_it(self, ledger: Ledger, clock: Clock):
        p1, p2 = self.deploying(ledger, 1), self.deploying(ledger, 2)
        assert ledger.acquire_deploy_lock("shop", "prod", p1.id, "run-1", lease_s=60).acquired
        clock.advance(50)
        assert ledger.renew_deploy_lock("shop", "prod", p1.id, lease_s=60)
        clock.advance(50)  # 100 s after acquiring, 50 s after the heartbeat: still held
        assert not ledger.acquire_deploy_lock("shop", "prod", p2.id, "run-2").acquired
        assert not ledger.deploy_lock_is_stale(ledger.deploy_lock("shop", "prod"))
        clock.advance(11)  # the holder died: no heartbeat for 61 s
        assert ledger.deploy_lock_is_stale(ledger.deploy_lock("shop", "prod"))
        claim = ledger.acquire_deploy_lock("shop", "prod", p2.id, "run-2")
        assert claim.acquired and claim.stale_reason == "lease_expired" and claim.took_over.promotion_id == p1.id
        assert ledger.renew_deploy_lock("shop", "prod", p1.id) is False  # the old holder learns it lost it
        assert ledger.audit_events("lock:prod/shop")[-1].detail["reason"] == "lease_expired"

    def test_racing_for_a_lock_exactly_one_wins(self, ledger: Ledger, ledger_url):
        n = 4
        promotions = [self.deploying(ledger, i) for i in range(n)]
        others = [Ledger(ledger_url) for _ in range(n)]
        results, errors = race(n, lambda i: others[i].acquire_deploy_lock("shop", "prod", promotions[i].id, f"run-{i}"))
        for lg in others:
            lg.close()
        assert errors == []
        winners = [i for i, r in enumerate(results) if r.acquired]
        assert len(winners) == 1
        winner = promotions[winners[0]].id
        assert all(r.holder.promotion_id == winner for r in results)
        assert ledger.deploy_lock("shop", "prod").promotion_id == winner
        assert [e.action for e in ledger.audit_events("lock:prod/shop")] == ["lock.acquire"]

    def test_migration_0003_carries_a_held_0002_lock_over(self, ledger_url):
        engine = make_engine(ledger_url)
        cfg = alembic_config(engine.url)
        with write_transaction(engine) as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0002")
        engine.dispose()
        old = Ledger(ledger_url)
        promotion = self.deploying(old, 1)
        with old.engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO environment_locks (environment, promotion_id, acquired_at, holder) "
                                 "VALUES ('prod', :p, :t, 'run-1')"), {"p": promotion.id, "t": T0})
        old.close()
        with Ledger.open(ledger_url) as ledger:
            assert current_revision(ledger.engine) == "0004"
            lock = ledger.deploy_lock("shop", "prod")
            assert (lock.promotion_id, lock.holder, lock.expires_at) == (promotion.id, "run-1", T0)
            assert "environment_locks" not in sa.inspect(ledger.engine).get_table_names()
        engine = make_engine(ledger_url)
        with write_transaction(engine) as conn:
            cfg = alembic_config(engine.url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
        assert current_revision(engine) == "0002"
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT environment, promotion_id FROM environment_locks")).all() == [
                ("prod", promotion.id)]
        engine.dispose()


class TestLocksSQLite(LockBehaviour):
    @pytest.fixture
    def ledger_url(self, tmp_path) -> str:
        return f"sqlite:///{tmp_path / 'ledger.db'}"
