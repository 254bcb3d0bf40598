"""The ledger: the system of record (its own database), append-only where the invariants say so."""

from stella_operators.ledger.audit import AuditEvent
from stella_operators.ledger.errors import LedgerError, NotFound
from stella_operators.ledger.records import Deployment, DeploymentStatus, TargetResult
from stella_operators.ledger.store import Ledger
from stella_operators.settings import default_ledger_url

__all__ = [
    "AuditEvent",
    "Deployment",
    "DeploymentStatus",
    "Ledger",
    "LedgerError",
    "NotFound",
    "TargetResult",
    "default_ledger_url",
]
