"""FreezeAwareCronTimetable with a real Airflow: scheduling, DAG serialization, DagBag parsing."""

from __future__ import annotations

import json
import textwrap
from datetime import timedelta

import pendulum
import pytest
from airflow.timetables.base import DataInterval, TimeRestriction

from stella_operators.timetables import FreezeAwareCronTimetable

BERLIN = "Europe/Berlin"
WEEKEND = {"name": "weekend", "timezone": BERLIN, "rrule": "FREQ=WEEKLY;BYDAY=FR;BYHOUR=16;BYMINUTE=0",
           "dtstart": "2026-01-02T16:00:00", "duration": "PT64H", "overriders": ["alice"]}
CLASS_PATH = "stella_operators.timetables.freeze_aware.FreezeAwareCronTimetable"


def berlin(*a) -> pendulum.DateTime:
    return pendulum.datetime(*a, tz=BERLIN)


def runs(timetable, start, count: int, *, catchup: bool = True, latest=None) -> list[pendulum.DateTime]:
    """The first `count` scheduled run_after times, the way the scheduler asks for them."""
    restriction = TimeRestriction(earliest=start, latest=latest, catchup=catchup)
    out, last = [], None
    for _ in range(count):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        if info is None:
            break
        out.append(info.run_after.in_timezone(BERLIN))
        last = info.data_interval
    return out


@pytest.fixture
def registered(monkeypatch):
    """The timetable must be listed in a plugin's `timetables` for (de)serialization.

    Until the Stella plugin lists it (stella_operators.plugin.StellaPlugin.timetables), add it to the
    loaded plugin class for this test, exactly as that one-line change would.
    """
    from airflow import plugins_manager

    from stella_operators.plugin import StellaPlugin

    if FreezeAwareCronTimetable not in list(getattr(StellaPlugin, "timetables", []) or []):
        monkeypatch.setattr(StellaPlugin, "timetables",
                            [*(getattr(StellaPlugin, "timetables", []) or []), FreezeAwareCronTimetable])
    plugins_manager.get_timetables_plugins.cache_clear()
    assert plugins_manager.get_timetables_plugins()[CLASS_PATH] is FreezeAwareCronTimetable
    yield
    plugins_manager.get_timetables_plugins.cache_clear()


def test_hourly_cron_skips_the_weekend_freeze():
    tt = FreezeAwareCronTimetable("0 * * * *", BERLIN, [WEEKEND])
    got = runs(tt, berlin(2026, 3, 13, 14, 0), 4)     # Friday 13 March 2026, CET
    # 14:00, 15:00; the ticks from Fri 16:00 to Mon 07:00 are skipped; the first open tick is Mon 08:00
    assert got == [berlin(2026, 3, 13, 14), berlin(2026, 3, 13, 15), berlin(2026, 3, 16, 8), berlin(2026, 3, 16, 9)]


def test_daily_cron_skips_frozen_days_across_dst():
    tt = FreezeAwareCronTimetable("30 17 * * *", timezone=BERLIN, windows=[WEEKEND])
    got = runs(tt, berlin(2026, 3, 25), 6)
    # Wed 25, Thu 26; Fri 27 - Sun 29 frozen (DST starts Sun 29); Mon 30 17:30 CEST, ...
    assert got == [berlin(2026, 3, 25, 17, 30), berlin(2026, 3, 26, 17, 30), berlin(2026, 3, 30, 17, 30),
                   berlin(2026, 3, 31, 17, 30), berlin(2026, 4, 1, 17, 30), berlin(2026, 4, 2, 17, 30)]
    assert [r.utcoffset() for r in got] == [timedelta(hours=1)] * 2 + [timedelta(hours=2)] * 4


def test_without_windows_it_is_a_cron_trigger_timetable():
    from airflow.timetables.trigger import CronTriggerTimetable

    plain = CronTriggerTimetable("0 * * * *", timezone=BERLIN)
    tt = FreezeAwareCronTimetable("0 * * * *", BERLIN)
    start = berlin(2026, 3, 13, 14)
    assert runs(tt, start, 5) == runs(plain, start, 5)


def test_catchup_false_and_latest():
    tt = FreezeAwareCronTimetable("0 * * * *", BERLIN, [WEEKEND])
    # a Friday evening well in the future, so `now` never matters for catchup=False
    friday = pendulum.now(BERLIN).add(years=2).next(pendulum.FRIDAY).at(18, 0)
    (first,) = runs(tt, friday, 1, catchup=False)
    assert first == friday.next(pendulum.MONDAY).at(8, 0)
    # the run would move past `latest`: none
    assert runs(tt, friday, 1, latest=friday.add(days=1)) == []


def test_allow_windows_and_interval():
    business = {"name": "business-hours", "kind": "allow", "timezone": BERLIN,
                "rrule": "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0",
                "dtstart": "2026-01-05T09:00", "duration": "PT8H"}
    tt = FreezeAwareCronTimetable("0 */4 * * *", BERLIN, [business], interval=timedelta(hours=4))
    got = runs(tt, berlin(2026, 3, 13, 12), 3)   # Fri: 12:00, 16:00, then Mon 12:00 (08:00 is before 09:00)
    assert got == [berlin(2026, 3, 13, 12), berlin(2026, 3, 13, 16), berlin(2026, 3, 16, 12)]
    info = tt.next_dagrun_info(last_automated_data_interval=None,
                               restriction=TimeRestriction(earliest=berlin(2026, 3, 14), latest=None, catchup=True))
    assert info.data_interval == DataInterval(berlin(2026, 3, 16, 8), berlin(2026, 3, 16, 12))


def test_invalid_windows_are_refused_at_construction():
    with pytest.raises(ValueError, match="unknown IANA"):
        FreezeAwareCronTimetable("0 * * * *", BERLIN, [{**WEEKEND, "timezone": "Mars/Base"}])
    with pytest.raises(ValueError, match="unique"):
        FreezeAwareCronTimetable("0 * * * *", BERLIN, [WEEKEND, WEEKEND])


def test_serialize_round_trip():
    tt = FreezeAwareCronTimetable("0 * * * *", BERLIN, [WEEKEND], interval=timedelta(hours=1))
    data = json.loads(json.dumps(tt.serialize()))           # plain JSON
    assert data["windows"][0]["name"] == "weekend" and data["windows"][0]["duration"] == "P2DT16H"
    again = FreezeAwareCronTimetable.deserialize(data)
    assert again == tt
    assert runs(again, berlin(2026, 3, 13, 14), 3) == runs(tt, berlin(2026, 3, 13, 14), 3)


def test_real_dag_and_airflow_dag_serialization(registered):
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("freeze_aware_demo", schedule=FreezeAwareCronTimetable("0 * * * *", BERLIN, [WEEKEND]),
             start_date=berlin(2026, 3, 13, 14), catchup=True) as dag:
        pass
    assert isinstance(dag.timetable, FreezeAwareCronTimetable)
    restriction = TimeRestriction(earliest=berlin(2026, 3, 13, 15, 30), latest=None, catchup=True)
    info = dag.timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction)
    assert info.run_after == berlin(2026, 3, 16, 8)            # Fri 16:00 is frozen

    serialized = json.loads(json.dumps(DagSerialization.to_dict(dag)))
    encoded = serialized["dag"]["timetable"]
    assert encoded["__type"] == CLASS_PATH
    assert encoded["__var"]["windows"][0]["rrule"] == WEEKEND["rrule"]
    restored = DagSerialization.from_dict(serialized)
    assert isinstance(restored.timetable, FreezeAwareCronTimetable)
    assert restored.timetable == dag.timetable
    assert restored.timetable.next_dagrun_info(last_automated_data_interval=None, restriction=restriction) == info


def test_dagbag_parses_a_dag_file_using_it(registered, tmp_path):
    from airflow.dag_processing.dagbag import DagBag

    (tmp_path / "freeze_dag.py").write_text(textwrap.dedent(f'''
        import pendulum
        from airflow.sdk import DAG, task
        from stella_operators.timetables import FreezeAwareCronTimetable

        WINDOWS = [{WEEKEND!r}]

        with DAG("nightly_sync", start_date=pendulum.datetime(2026, 3, 1, tz="{BERLIN}"), catchup=False,
                 schedule=FreezeAwareCronTimetable("0 2 * * *", timezone="{BERLIN}", windows=WINDOWS)):
            @task
            def sync():
                return "ok"

            sync()
    '''))
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    dag = bag.dags["nightly_sync"]
    assert isinstance(dag.timetable, FreezeAwareCronTimetable)
    assert [w.name for w in dag.timetable.windows] == ["weekend"]
    assert "skipping freeze windows weekend" in dag.timetable.description
    # what the DAG processor stores and the scheduler reads back
    from airflow.serialization.serialized_objects import DagSerialization, LazyDeserializedDAG

    lazy = LazyDeserializedDAG.from_dag(dag)
    assert lazy.data["dag"]["timetable"]["__type"] == CLASS_PATH
    restored = DagSerialization.from_dict(lazy.data)
    assert restored.timetable == dag.timetable
