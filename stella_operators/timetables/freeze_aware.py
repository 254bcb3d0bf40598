"""A cron timetable that does not start runs inside freeze windows.

    from stella_operators.timetables import FreezeAwareCronTimetable

    schedule = FreezeAwareCronTimetable(
        "0 6 * * *", timezone="Europe/Berlin",
        windows=[{"name": "weekend", "timezone": "Europe/Berlin",
                  "rrule": "FREQ=WEEKLY;BYDAY=FR;BYHOUR=16;BYMINUTE=0",
                  "dtstart": "2026-01-02T16:00:00", "duration": "PT64H"}],
    )

Behaves like Airflow's CronTriggerTimetable (same cron, timezone, `interval` and `run_immediately`
arguments) except for ticks that fall inside a frozen period (stella_operators.gates.freeze.windows
semantics: deny windows, and outside allow windows when there are any). Those ticks are SKIPPED:
no run is created for them, not even a late one when the freeze ends. The next run is the first
cron tick at or after the instant the freeze ends (and, if that tick is frozen again, the first tick
after that freeze, and so on). If no open tick exists within the search horizon (366 days) no run is
scheduled. Manual triggers are not affected: the freeze *gate* guards promotions, this timetable only
keeps scheduled runs out of freezes.

For the scheduler to load it from a serialized DAG, the class must be listed in an Airflow plugin's
`timetables` (the Stella plugin): stella_operators.timetables.freeze_aware.FreezeAwareCronTimetable.
Windows are serialized as the plain dicts `FreezeWindow.model_dump(mode="json")` produces.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction
from airflow.timetables.trigger import CronTriggerTimetable

from stella_operators.gates.freeze.windows import SEARCH_HORIZON, FreezeWindow, is_frozen, next_open

if TYPE_CHECKING:
    from dateutil.relativedelta import relativedelta
    from pendulum import DateTime
    from pendulum.tz.timezone import FixedTimezone, Timezone

#: at most this many consecutive frozen periods are stepped over for one run
MAX_FREEZES_SKIPPED = 1000


class FreezeAwareCronTimetable(CronTriggerTimetable):
    """CronTriggerTimetable whose ticks inside freeze windows are skipped (see module docstring)."""

    def __init__(
        self,
        cron: str,
        timezone: str | Timezone | FixedTimezone = "UTC",
        windows: list[dict[str, Any]] | tuple[dict[str, Any] | FreezeWindow, ...] = (),
        *,
        interval: datetime.timedelta | relativedelta = datetime.timedelta(),
        run_immediately: bool | datetime.timedelta = False,
    ) -> None:
        super().__init__(cron, timezone=timezone, interval=interval, run_immediately=run_immediately)
        self._windows: tuple[FreezeWindow, ...] = tuple(
            w if isinstance(w, FreezeWindow) else FreezeWindow.model_validate(w) for w in windows
        )
        names = [w.name for w in self._windows]
        if len(set(names)) != len(names):
            raise ValueError(f"freeze window names must be unique: {names}")
        if self._windows:
            skip = f"skipping freeze windows {', '.join(names)}"
            self.description = f"{self.description}, {skip}" if self.description else skip

    @property
    def windows(self) -> tuple[FreezeWindow, ...]:
        return self._windows

    # -- serialization -------------------------------------------------------------------------------
    def serialize(self) -> dict[str, Any]:
        data = super().serialize()
        data["windows"] = [w.model_dump(mode="json") for w in self._windows]
        return data

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> FreezeAwareCronTimetable:
        from airflow.serialization.decoders import decode_interval, decode_run_immediately

        return cls(
            data["expression"],
            timezone=_decode_timezone(data["timezone"]),
            windows=data.get("windows", []),
            interval=decode_interval(data["interval"]),
            run_immediately=decode_run_immediately(data.get("run_immediately", False)),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FreezeAwareCronTimetable):
            return NotImplemented
        return (self._expression == other._expression and self._timezone == other._timezone
                and self._windows == other._windows and self._interval == other._interval
                and self._run_immediately == other._run_immediately)

    def __hash__(self) -> int:
        return hash((self._expression, self._timezone, self._windows))

    @property
    def summary(self) -> str:
        return f"{self._expression} (freeze-aware)" if self._windows else self._expression

    # -- scheduling ----------------------------------------------------------------------------------
    def first_open_tick(self, at: DateTime) -> DateTime | None:
        """`at` if it is not frozen, else the first cron tick at or after the freeze ends (None: none found)."""
        if not self._windows:
            return at
        limit = at + SEARCH_HORIZON
        current = at
        for _ in range(MAX_FREEZES_SKIPPED):
            if not is_frozen(self._windows, current).frozen:
                return current
            opens = next_open(self._windows, current)
            if opens is None or opens > limit:
                return None
            current = self._align_to_next(pendulum.instance(opens).in_timezone("UTC"))
            if current > limit:
                return None
        return None

    def next_dagrun_info(
        self,
        *,
        last_automated_data_interval: DataInterval | None,
        restriction: TimeRestriction,
    ) -> DagRunInfo | None:
        info = super().next_dagrun_info(
            last_automated_data_interval=last_automated_data_interval, restriction=restriction
        )
        if info is None or not self._windows:
            return info
        run_at = self.first_open_tick(info.run_after)
        if run_at is None:
            return None
        if restriction.latest is not None and restriction.latest < run_at:
            return None
        return DagRunInfo.interval(pendulum.instance(run_at - self._interval).in_timezone("UTC"), run_at)


def _decode_timezone(value: str | int) -> Any:
    """The inverse of Airflow's encode_timezone: an IANA name (or "UTC"), or a fixed offset in seconds."""
    return value if isinstance(value, str) else pendulum.timezone(value)
