"""The Promotion: one release moving into one environment, as recorded in the ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from stella_operators.promotion.state import TERMINAL_STATUSES, PromotionStatus


class Promotion(BaseModel):
    """A release x target environment. `status` only changes through the state machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    app: str
    environment: str
    release_id: str
    status: PromotionStatus
    requested_by: str
    requested_at: datetime
    reason: str = ""
    dag_id: str | None = None
    run_id: str | None = None
    decision: dict[str, Any] | None = None
    updated_at: datetime | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES
