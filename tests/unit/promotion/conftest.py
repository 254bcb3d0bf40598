"""A promotion world for the service tests: SQLite ledger, in-memory hosts, a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.unit.promotion.fakes import T0, World


class Clock:
    """The ledger's clock; tests move `now` to let leases expire."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> Iterator[World]:
    w = World(tmp_path, clock=clock)
    yield w
    w.ledger.close()
