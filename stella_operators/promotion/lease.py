"""Keep a deploy lock's lease alive while this process deploys (a heartbeat thread).

If the process dies, the heartbeats stop, the lease runs out and the next promotion takes the lock
over and rolls the dead deployment back (promotion/recovery.py).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from stella_operators.ledger.locks import LockScope
    from stella_operators.ledger.protocols import DeployLocks

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the lock every `lease_s / 3` seconds until the `with` block ends; `lost` is set when
    the lock was taken from us (the lease ran out, e.g. the ledger was unreachable too long)."""

    def __init__(self, ledger: DeployLocks, app: str, environment: str, promotion_id: str, *, scope: LockScope,
                 lease_s: float):
        self.ledger, self.app, self.environment, self.promotion_id = ledger, app, environment, promotion_id
        self.scope, self.lease_s = scope, lease_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stella-lock-lease", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                held = self.ledger.renew_deploy_lock(self.app, self.environment, self.promotion_id,
                                                     scope=self.scope, lease_s=self.lease_s)
            except Exception as exc:  # noqa: BLE001 - keep trying: the lease covers a few misses
                log.warning("could not renew the deploy lock of %s/%s: %s", self.app, self.environment, exc)
                continue
            if not held:
                self.lost.set()
                log.error("promotion %s lost the deploy lock of %s/%s (its lease ran out)", self.promotion_id,
                          self.app, self.environment)
                return
