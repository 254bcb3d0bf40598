"""The evidence locker from the tasks: copy a promotion's records after its steps, checkpoint on a schedule.

Why a failed locker write does not fail a deploy or verify step: by then the ledger has committed
the record and the hosts have changed; failing the task would make Airflow retry a deployment (or
mark a good one failed) because of a storage outage. The ledger is the queue instead: the step logs
an error and an audit event `locker.write_failed`, and the `stella_audit_checkpoint` DAG copies
everything not yet in the locker on its next run -- and that DAG does fail, loudly, while the
locker stays unwritable.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from stella_operators.evidence.locker_sync import (
    archive_promotion,
    archive_release,
    catch_up,
    checkpoint_to_locker,
    host_files_of,
)
from stella_operators.hooks.locker import EvidenceLockerHook
from stella_operators.operators.base import StellaBaseOperator

if TYPE_CHECKING:
    from stella_operators.ledger.protocols import FullLedger

log = logging.getLogger(__name__)


def archive_quietly(ledger: FullLedger, promotion_id: str | None = None, *, release_id: str | None = None,
                    outcome: Any = None) -> bool:
    """Copy a promotion's (or a release's) records to the locker; on failure log and audit it, never raise."""
    try:
        locker = EvidenceLockerHook().get_conn()
        if promotion_id:
            index = archive_promotion(ledger, locker, promotion_id, host_files=host_files_of(outcome))
        else:
            index = archive_release(ledger, locker, str(release_id))
        log.info("evidence locker %s: index %s/%s holds %d files", locker.where, index.kind, index.subject,
                 len(index.entries))
        return True
    except Exception as exc:  # noqa: BLE001 - any storage failure: the ledger keeps the record (module doc)
        subject = f"promotion:{promotion_id}" if promotion_id else f"release:{release_id}"
        log.error("evidence locker: could not copy %s (%s: %s); the ledger holds every record and the "
                  "stella_audit_checkpoint DAG copies it on its next run", subject, type(exc).__name__,
                  str(exc)[:300])
        try:
            ledger.audit("stella", "locker.write_failed", subject, {"error": type(exc).__name__})
        except Exception:  # noqa: BLE001 - the audit note is a courtesy; the error is logged above
            log.exception("could not note the locker failure in the audit log")
        return False


class AuditCheckpointOperator(StellaBaseOperator):
    """Copy every recent promotion's records not yet in the evidence locker, then sign a checkpoint of
    the audit chain (event count + head hash) into the locker. Fails when the locker cannot be
    written: this is where a storage outage must show.

    :param catch_up_limit: how many of the latest promotions to copy again (idempotent).
    """

    def __init__(self, *, catch_up_limit: int = 200, **kwargs: Any):
        super().__init__(**kwargs)
        self.catch_up_limit = catch_up_limit

    def execute(self, context: Any) -> dict[str, Any]:
        try:
            locker = EvidenceLockerHook().get_conn()
            copied = catch_up(self.ledger, locker, limit=self.catch_up_limit)
            index, events, head = checkpoint_to_locker(self.ledger, self.signing_key, locker)
        except Exception as exc:
            raise AirflowFailException(f"evidence locker {EvidenceLockerHook().url}: {type(exc).__name__}: "
                                       f"{str(exc)[:300]} (check STELLA_LOCKER_URL and the Connection "
                                       "STELLA_LOCKER_CONN_ID names)") from None
        self.log.info("copied %d promotion(s) to the locker; checkpoint %s: %d events, head %s",
                      len(copied), index.subject, events, head)
        return {"checkpoint": index.subject, "events": events, "head": head, "copied": copied}
