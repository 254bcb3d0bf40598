"""Freeze windows and the freeze gate: boundaries, DST, allow/deny, overrides, replay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from stella_operators.gates.contract import GateConfigError, PromotionContext, Verdict, evaluate_gate, replay_gate
from stella_operators.gates.freeze import (
    FreezeGate,
    FreezeReason,
    FreezeWindow,
    active_windows,
    is_frozen,
    next_open,
)
from stella_operators.gates.freeze.windows import localize, occurrences_between, parse_duration
from stella_operators.gates.registry import build_gate
from stella_operators.release.model import ComponentDigest, Release

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SEC = timedelta(seconds=1)


def berlin(*a) -> datetime:
    return datetime(*a, tzinfo=BERLIN)


def utc(*a) -> datetime:
    return datetime(*a, tzinfo=UTC)


def weekend(**kw) -> FreezeWindow:
    spec = dict(name="weekend", timezone="Europe/Berlin", rrule="FREQ=WEEKLY;BYDAY=FR;BYHOUR=16;BYMINUTE=0",
                dtstart="2026-01-02T16:00:00", duration="PT64H", overriders=["alice", "bob"],
                description="no weekend deploys")
    spec.update(kw)
    return FreezeWindow.model_validate(spec)


# -- windows: one-off ---------------------------------------------------------------------------------

def test_one_off_window_in_and_out():
    w = FreezeWindow(name="xmas", timezone="Europe/Berlin", start="2026-12-20T00:00", end="2027-01-04T09:00")
    assert not is_frozen([w], berlin(2026, 12, 19, 23, 59, 59)).frozen
    assert is_frozen([w], berlin(2026, 12, 20, 0, 0)).frozen            # start inclusive
    assert is_frozen([w], berlin(2027, 1, 4, 8, 59, 59)).frozen
    assert not is_frozen([w], berlin(2027, 1, 4, 9, 0)).frozen           # end exclusive
    # the same instant given in another zone is the same instant
    assert is_frozen([w], utc(2026, 12, 19, 23, 0)).frozen              # 00:00 CET
    (occ,) = active_windows([w], utc(2026, 12, 25, 12))
    assert occ.window is w and occ.start == berlin(2026, 12, 20) and occ.end == berlin(2027, 1, 4, 9)
    assert occ.start.tzinfo is UTC and str(occ.local_start.tzinfo) == "Europe/Berlin"


def test_one_off_aware_bounds_are_converted_to_the_window_zone():
    w = FreezeWindow(name="x", timezone="Europe/Berlin", start="2026-06-01T10:00:00+00:00",
                     end="2026-06-01T12:00:00Z")
    assert w.start == datetime(2026, 6, 1, 12, 0) and w.end == datetime(2026, 6, 1, 14, 0)   # CEST wall time
    assert is_frozen([w], utc(2026, 6, 1, 10)).frozen
    assert not is_frozen([w], utc(2026, 6, 1, 12)).frozen


def test_naive_instant_is_refused():
    with pytest.raises(ValueError, match="aware"):
        is_frozen([weekend()], datetime(2026, 3, 27, 17))


# -- windows: recurring ---------------------------------------------------------------------------------

def test_weekly_window_exact_boundaries():
    w = weekend()
    # an ordinary weekend (no DST change): Fri 2026-03-13 16:00 -> Mon 2026-03-16 08:00 CET
    assert not is_frozen([w], berlin(2026, 3, 13, 15, 59, 59)).frozen
    assert is_frozen([w], berlin(2026, 3, 13, 16, 0)).frozen
    assert is_frozen([w], berlin(2026, 3, 14, 12, 0)).frozen
    assert is_frozen([w], berlin(2026, 3, 16, 7, 59, 59)).frozen
    assert not is_frozen([w], berlin(2026, 3, 16, 8, 0)).frozen
    assert not is_frozen([w], berlin(2026, 3, 18, 12, 0)).frozen          # Wednesday
    (occ,) = active_windows([w], berlin(2026, 3, 15, 3, 0))
    assert (occ.start, occ.end) == (berlin(2026, 3, 13, 16), berlin(2026, 3, 16, 8))
    state = is_frozen([w], berlin(2026, 3, 14, 12, 0))
    assert state.reason == FreezeReason.WINDOW_ACTIVE and state.ends_at == utc(2026, 3, 16, 7)


def test_weekly_window_stays_at_local_wall_time_across_spring_dst_change():
    """Europe/Berlin springs forward on Sun 2026-03-29 02:00 -> 03:00."""
    w = weekend()
    # Fri 27 March is still CET (UTC+1): starts 15:00 UTC
    assert not is_frozen([w], utc(2026, 3, 27, 14, 59, 59)).frozen
    assert is_frozen([w], utc(2026, 3, 27, 15, 0)).frozen
    # Mon 30 March is CEST (UTC+2): the window still ends at 08:00 local = 06:00 UTC (63 h elapsed)
    assert is_frozen([w], utc(2026, 3, 30, 5, 59, 59)).frozen
    assert not is_frozen([w], utc(2026, 3, 30, 6, 0)).frozen
    (occ,) = active_windows([w], berlin(2026, 3, 29, 12))
    assert occ.end - occ.start == timedelta(hours=63)
    # Fri 3 April is CEST: still 16:00 local, now 14:00 UTC
    assert not is_frozen([w], utc(2026, 4, 3, 13, 59, 59)).frozen
    assert is_frozen([w], utc(2026, 4, 3, 14, 0)).frozen
    (occ,) = active_windows([w], utc(2026, 4, 3, 14, 0))
    assert occ.local_start.hour == 16 and occ.local_start.utcoffset() == timedelta(hours=2)


def test_weekly_window_stays_at_local_wall_time_across_autumn_dst_change():
    """Europe/Berlin falls back on Sun 2026-10-25 03:00 -> 02:00."""
    w = weekend()
    (before,) = active_windows([w], berlin(2026, 10, 23, 16))     # Fri 23 Oct, CEST
    assert before.start.astimezone(UTC) == utc(2026, 10, 23, 14)
    assert before.end == berlin(2026, 10, 26, 8) and before.end.astimezone(UTC) == utc(2026, 10, 26, 7)
    assert before.end - before.start == timedelta(hours=65)
    assert not is_frozen([w], utc(2026, 10, 26, 7)).frozen
    (after,) = active_windows([w], berlin(2026, 10, 30, 16))       # Fri 30 Oct, CET
    assert after.start.astimezone(UTC) == utc(2026, 10, 30, 15)
    assert not is_frozen([w], utc(2026, 10, 30, 14, 59, 59)).frozen


def test_daily_window_in_the_spring_gap_covers_the_existing_part_only():
    """02:30 does not exist on 2026-03-29 in Berlin: a daily 02:30-03:30 window is 03:00-03:30 CEST."""
    w = FreezeWindow(name="backup", timezone="Europe/Berlin", rrule="FREQ=DAILY", dtstart="2026-01-01T02:30",
                     duration=60)
    assert localize(datetime(2026, 3, 29, 2, 30), BERLIN) == utc(2026, 3, 29, 1, 0)   # the gap's end
    (occ,) = occurrences_between(w, berlin(2026, 3, 29, 0), berlin(2026, 3, 29, 12))
    assert occ.start.astimezone(UTC) == utc(2026, 3, 29, 1, 0)      # 03:00 CEST
    assert occ.end.astimezone(UTC) == utc(2026, 3, 29, 1, 30)       # 03:30 CEST
    assert not is_frozen([w], utc(2026, 3, 29, 0, 59, 59)).frozen   # 01:59:59 CET
    assert is_frozen([w], utc(2026, 3, 29, 1, 0)).frozen
    assert not is_frozen([w], utc(2026, 3, 29, 1, 30)).frozen
    # the days around it: one hour, 02:30 local
    (prev,) = occurrences_between(w, berlin(2026, 3, 28, 0), berlin(2026, 3, 28, 12))
    (nxt,) = occurrences_between(w, berlin(2026, 3, 30, 0), berlin(2026, 3, 30, 12))
    assert prev.start.astimezone(UTC) == utc(2026, 3, 28, 1, 30) and prev.end - prev.start == timedelta(hours=1)
    assert nxt.start.astimezone(UTC) == utc(2026, 3, 30, 0, 30) and nxt.end - nxt.start == timedelta(hours=1)
    # an occurrence entirely inside the gap is empty
    gap = FreezeWindow(name="gap", timezone="Europe/Berlin", rrule="FREQ=DAILY", dtstart="2026-01-01T02:10",
                       duration="PT30M")
    assert occurrences_between(gap, berlin(2026, 3, 29, 0), berlin(2026, 3, 29, 12)) == []
    assert len(occurrences_between(gap, berlin(2026, 3, 28, 0), berlin(2026, 3, 28, 12))) == 1


def test_daily_window_in_the_autumn_fold_takes_the_longer_reading():
    """02:30 exists twice on 2026-10-25 in Berlin: start at the first, end (03:30) after the fold: 2 hours."""
    w = FreezeWindow(name="backup", timezone="Europe/Berlin", rrule="FREQ=DAILY", dtstart="2026-01-01T02:30",
                     duration=60)
    (occ,) = occurrences_between(w, berlin(2026, 10, 25, 0), berlin(2026, 10, 25, 12))
    assert occ.start.astimezone(UTC) == utc(2026, 10, 25, 0, 30)    # 02:30 CEST, the first 02:30
    assert occ.end.astimezone(UTC) == utc(2026, 10, 25, 2, 30)      # 03:30 CET
    assert is_frozen([w], utc(2026, 10, 25, 1, 45)).frozen           # 02:45 CET, the second 02:45
    assert not is_frozen([w], utc(2026, 10, 25, 2, 30)).frozen
    # a window *ending* at an ambiguous 02:30 ends at the second one
    w2 = FreezeWindow(name="late", timezone="Europe/Berlin", rrule="FREQ=DAILY", dtstart="2026-01-01T01:00",
                      duration="PT1H30M")
    (occ2,) = occurrences_between(w2, berlin(2026, 10, 25, 0), berlin(2026, 10, 25, 12))
    assert occ2.end.astimezone(UTC) == utc(2026, 10, 25, 1, 30)


def test_new_york_dst():
    """America/New_York: springs forward 2026-03-08 02:00, falls back 2026-11-01 02:00."""
    w = FreezeWindow(name="close", timezone="America/New_York",
                     rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR,SA,SU;BYHOUR=16;BYMINUTE=0",
                     dtstart="2026-01-01T16:00", duration="PT2H")
    assert is_frozen([w], utc(2026, 3, 6, 21, 0)).frozen        # Fri 16:00 EST
    assert not is_frozen([w], utc(2026, 3, 6, 20, 59)).frozen
    assert is_frozen([w], utc(2026, 3, 9, 20, 0)).frozen        # Mon 16:00 EDT
    assert not is_frozen([w], utc(2026, 3, 9, 22, 0)).frozen    # 18:00 EDT: ended
    assert is_frozen([w], utc(2026, 11, 2, 21, 0)).frozen       # back to EST
    assert not is_frozen([w], utc(2026, 11, 2, 20, 59)).frozen
    nightly = FreezeWindow(name="n", timezone="America/New_York", rrule="FREQ=DAILY",
                           dtstart="2026-01-01T02:30", duration=60)
    (occ,) = occurrences_between(nightly, datetime(2026, 3, 8, tzinfo=NEW_YORK),
                                 datetime(2026, 3, 8, 12, tzinfo=NEW_YORK))
    assert occ.start.astimezone(UTC) == utc(2026, 3, 8, 7, 0)   # 03:00 EDT, the end of the gap
    assert occ.end.astimezone(UTC) == utc(2026, 3, 8, 7, 30)


def test_rrule_until_in_utc_and_count():
    w = weekend(rrule="RRULE:FREQ=WEEKLY;BYDAY=FR;BYHOUR=16;BYMINUTE=0;UNTIL=20260320T150000Z")
    assert w.rrule.startswith("FREQ=")
    assert is_frozen([w], berlin(2026, 3, 20, 17)).frozen
    assert not is_frozen([w], berlin(2026, 3, 27, 17)).frozen
    c = weekend(rrule="FREQ=WEEKLY;COUNT=2", dtstart="2026-03-06T16:00")
    assert is_frozen([c], berlin(2026, 3, 13, 17)).frozen
    assert not is_frozen([c], berlin(2026, 3, 20, 17)).frozen


# -- allow / deny ---------------------------------------------------------------------------------------

def business_hours(**kw) -> FreezeWindow:
    spec = dict(name="business-hours", kind="allow", timezone="Europe/Berlin",
                rrule="FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR;BYHOUR=9;BYMINUTE=0", dtstart="2026-01-05T09:00",
                duration="PT8H", overriders=["carol"])
    spec.update(kw)
    return FreezeWindow.model_validate(spec)


def test_allow_only_outside_is_frozen():
    allow = business_hours()
    assert not is_frozen([allow], berlin(2026, 3, 10, 9, 0)).frozen
    assert not is_frozen([allow], berlin(2026, 3, 10, 16, 59, 59)).frozen
    state = is_frozen([allow], berlin(2026, 3, 10, 17, 0))
    assert state.frozen and state.reason == FreezeReason.OUTSIDE_ALLOW_WINDOW and not state.deny
    assert state.ends_at == berlin(2026, 3, 11, 9, 0)
    sat = is_frozen([allow], berlin(2026, 3, 14, 12, 0))
    assert sat.frozen and sat.ends_at == berlin(2026, 3, 16, 9, 0)


def test_deny_wins_over_allow():
    allow = business_hours()
    deny = FreezeWindow(name="release-party", timezone="Europe/Berlin", start="2026-03-10T10:00",
                        end="2026-03-10T12:00")
    state = is_frozen([allow, deny], berlin(2026, 3, 10, 11, 0))
    assert state.frozen and state.reason == FreezeReason.WINDOW_ACTIVE
    assert [o.window.name for o in state.deny] == ["release-party"]
    assert [o.window.name for o in state.allow] == ["business-hours"]
    assert state.ends_at == berlin(2026, 3, 10, 12, 0)
    assert not is_frozen([allow, deny], berlin(2026, 3, 10, 12, 0)).frozen


def test_next_open_chains_windows():
    allow = business_hours()
    w = weekend()
    # Sat: the weekend ends Mon 08:00, but the allow window opens only at 09:00
    assert next_open([allow, w], berlin(2026, 3, 14, 12)) == berlin(2026, 3, 16, 9)
    # back-to-back deny windows
    a = FreezeWindow(name="a", timezone="UTC", start="2026-05-01T00:00", end="2026-05-02T00:00")
    b = FreezeWindow(name="b", timezone="Europe/Berlin", start="2026-05-02T02:00", end="2026-05-03T00:00")
    assert next_open([a, b], utc(2026, 5, 1, 12)) == berlin(2026, 5, 3, 0)
    assert next_open([a, b], utc(2026, 4, 30, 12)) == utc(2026, 4, 30, 12)   # not frozen: itself
    never = FreezeWindow(name="always", timezone="UTC", rrule="FREQ=DAILY", dtstart="2026-01-01T00:00",
                         duration="P1D")
    assert next_open([never], utc(2026, 5, 1)) is None
    assert is_frozen([never], utc(2026, 5, 1)).ends_at is None


# -- window validation ----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, match", [
    (dict(timezone="Mars/Olympus", start="2026-01-01T00:00", end="2026-01-02T00:00"), "unknown IANA"),
    (dict(timezone="UTC", start="2026-01-02T00:00", end="2026-01-01T00:00"), "end must be after start"),
    (dict(timezone="UTC", start="2026-01-01T00:00"), "needs both"),
    (dict(timezone="UTC"), "give start/end"),
    (dict(timezone="UTC", start="2026-01-01T00:00", end="2026-01-02T00:00", rrule="FREQ=DAILY"), "not both"),
    (dict(timezone="UTC", rrule="FREQ=DAILY", dtstart="2026-01-01T00:00"), "missing: duration"),
    (dict(timezone="UTC", rrule="FREQ=FORTNIGHTLY", dtstart="2026-01-01T00:00", duration=5), "not allowed"),
    (dict(timezone="UTC", rrule="FREQ=WEEKLY;BYDAY=XX", dtstart="2026-01-01T00:00", duration=5), "invalid rrule"),
    (dict(timezone="UTC", rrule="FREQ=MINUTELY", dtstart="2026-01-01T00:00", duration=5), "HOURLY or coarser"),
    (dict(timezone="UTC", rrule="DTSTART:20260101T000000\nRRULE:FREQ=DAILY", dtstart="2026-01-01T00:00",
          duration=5), "single RRULE"),
    (dict(timezone="UTC", rrule="FREQ=DAILY", dtstart="2026-01-01T00:00", duration="P1M"), "ISO-8601"),
    (dict(timezone="UTC", rrule="FREQ=DAILY", dtstart="2026-01-01T00:00", duration=0), "positive"),
    (dict(timezone="UTC", start="2026-01-01T00:00", end="2026-01-02T00:00", kind="maybe"), "deny"),
    (dict(timezone="UTC", start="2026-01-01T00:00", end="2026-01-02T00:00", overriders="alice"), "list"),
])
def test_invalid_windows(spec, match):
    with pytest.raises(ValidationError, match=match):
        FreezeWindow.model_validate({"name": "w", **spec})


def test_durations():
    assert parse_duration("PT64H") == timedelta(hours=64)
    assert parse_duration("P2DT16H") == timedelta(hours=64)
    assert parse_duration("P1W") == timedelta(days=7)
    assert parse_duration(90) == parse_duration("90") == timedelta(minutes=90)
    w = weekend()
    assert w.model_dump(mode="json")["duration"] == "P2DT16H"
    assert FreezeWindow.model_validate(w.model_dump(mode="json")) == w


def test_gate_config_errors_through_build_gate():
    types = {"freeze": FreezeGate}
    with pytest.raises(GateConfigError) as e:
        build_gate({"type": "freeze", "windows": [{"name": "w", "timezone": "Nowhere/Land",
                                                   "start": "2026-01-01T00:00", "end": "2026-01-02T00:00"}]},
                   types=types)
    assert e.value.path == "windows.0.timezone"
    with pytest.raises(GateConfigError, match="unknown key 'window'"):
        build_gate({"type": "freeze", "window": []}, types=types)
    w = weekend().model_dump(mode="json")
    with pytest.raises(GateConfigError, match="unique"):
        build_gate({"type": "freeze", "windows": [w, w]}, types=types)
    gate = build_gate({"type": "freeze", "name": "prod-freeze", "windows": [w]}, types=types)
    assert isinstance(gate, FreezeGate) and gate.name == "prod-freeze" and gate.type == "freeze"


# -- the gate ------------------------------------------------------------------------------------------

def release() -> Release:
    return Release.seal(id="r1", app="shop", name="1.0.0", created_at=utc(2026, 3, 1), created_by="dave",
                        components=[ComponentDigest(name="web", repository="registry.example/shop/web",
                                                    digest="sha256:" + "a" * 64, tag="1.0.0")])


def ctx(now: datetime, **labels: str) -> PromotionContext:
    return PromotionContext(app="shop", environment="prod", release=release(), promotion_id="p1",
                            requested_by="erin", now=now, labels=dict(labels))


def freeze_gate(*windows: FreezeWindow) -> FreezeGate:
    return build_gate({"type": "freeze", "windows": [w.model_dump(mode="json") for w in windows]},
                      types={"freeze": FreezeGate})


SATURDAY = berlin(2026, 3, 14, 12, 0)


def test_gate_passes_outside_windows():
    verdict, inputs = evaluate_gate(freeze_gate(weekend()), ctx(berlin(2026, 3, 11, 12)))
    assert verdict.verdict == Verdict.PASS and verdict.reasons == ()
    assert inputs["override"] is None and inputs["now"] == "2026-03-11T12:00:00+01:00"


def test_gate_fails_inside_window_and_says_when_it_ends():
    verdict, inputs = evaluate_gate(freeze_gate(weekend()), ctx(SATURDAY))
    assert verdict.verdict == Verdict.FAIL
    assert verdict.reasons == ("freeze.window_active",)
    assert "'weekend'" in verdict.message
    assert "2026-03-16 08:00 CET (Europe/Berlin)" in verdict.message
    assert "2026-03-16 07:00 UTC" in verdict.message
    assert verdict.remedy == ("wait until 2026-03-16 08:00 CET (Europe/Berlin) = 2026-03-16 07:00 UTC "
                              "or have one of alice, bob override with a written reason")
    assert verdict.details["frozen_by"][0]["window"] == "weekend"
    assert verdict.details["opens_at"] == "2026-03-16T07:00:00+00:00"
    assert verdict.details["may_override"] == ["alice", "bob"]


def test_gate_outside_allow_window():
    verdict, _ = evaluate_gate(freeze_gate(business_hours()), ctx(SATURDAY))
    assert verdict.verdict == Verdict.FAIL and verdict.reasons == ("freeze.outside_allow_window",)
    assert "outside the allow windows 'business-hours'" in verdict.message
    assert "2026-03-16 09:00 CET (Europe/Berlin)" in verdict.message
    assert "carol" in verdict.remedy


REASON = "hotfix for payment outage INC-4711"


def test_override_by_listed_user_with_reason_passes():
    verdict, inputs = evaluate_gate(freeze_gate(weekend()),
                                    ctx(SATURDAY, freeze_override_by="alice", freeze_override_reason=REASON))
    assert verdict.verdict == Verdict.PASS
    assert verdict.reasons == ("freeze.overridden",)
    assert verdict.details["override_by"] == "alice"
    assert verdict.details["reason"] == REASON
    assert verdict.details["windows"] == ["weekend"]
    assert inputs["override"] == {"by": "alice", "reason": REASON}


def test_override_must_be_allowed_by_every_active_deny_window():
    other = FreezeWindow(name="quarter-close", timezone="Europe/Berlin", start="2026-03-13T00:00",
                         end="2026-03-17T00:00", overriders=["bob", "frank"])
    gate = freeze_gate(weekend(), other)
    ok, _ = evaluate_gate(gate, ctx(SATURDAY, freeze_override_by="bob", freeze_override_reason=REASON))
    assert ok.verdict == Verdict.PASS and ok.details["windows"] == ["weekend", "quarter-close"]
    refused, _ = evaluate_gate(gate, ctx(SATURDAY, freeze_override_by="alice", freeze_override_reason=REASON))
    assert refused.verdict == Verdict.FAIL and refused.reasons == ("freeze.override_refused",)
    assert "only bob may" in refused.message


def test_override_by_unlisted_user_is_refused():
    verdict, _ = evaluate_gate(freeze_gate(weekend()),
                               ctx(SATURDAY, freeze_override_by="mallory", freeze_override_reason=REASON))
    assert verdict.verdict == Verdict.FAIL
    assert verdict.reasons == ("freeze.override_refused",)
    assert "mallory may not override" in verdict.message and "alice, bob" in verdict.message


def test_override_without_reason_is_refused():
    for reason in ("", "   ", "because"):
        verdict, _ = evaluate_gate(freeze_gate(weekend()),
                                   ctx(SATURDAY, freeze_override_by="alice", freeze_override_reason=reason))
        assert verdict.verdict == Verdict.FAIL
        assert verdict.reasons == ("freeze.override_reason_missing",)
    verdict, _ = evaluate_gate(freeze_gate(weekend()), ctx(SATURDAY, freeze_override_by="mallory"))
    assert verdict.reasons == ("freeze.override_reason_missing", "freeze.override_refused")
    anonymous, _ = evaluate_gate(freeze_gate(weekend()), ctx(SATURDAY, freeze_override_reason=REASON))
    assert anonymous.reasons == ("freeze.override_refused",)


def test_window_without_overriders_cannot_be_overridden():
    verdict, _ = evaluate_gate(freeze_gate(weekend(overriders=[])),
                               ctx(SATURDAY, freeze_override_by="alice", freeze_override_reason=REASON))
    assert verdict.reasons == ("freeze.override_refused",) and "nobody" in verdict.message
    assert "nobody may override" in verdict.remedy


def test_override_outside_allow_windows_needs_an_allow_window_overrider():
    gate = freeze_gate(business_hours())
    ok, _ = evaluate_gate(gate, ctx(SATURDAY, freeze_override_by="carol", freeze_override_reason=REASON))
    assert ok.verdict == Verdict.PASS and ok.reasons == ("freeze.overridden",)
    no, _ = evaluate_gate(gate, ctx(SATURDAY, freeze_override_by="alice", freeze_override_reason=REASON))
    assert no.reasons == ("freeze.override_refused",)


def test_override_not_needed_when_open():
    verdict, _ = evaluate_gate(freeze_gate(weekend()),
                               ctx(berlin(2026, 3, 11, 12), freeze_override_by="alice", freeze_override_reason=REASON))
    assert verdict.verdict == Verdict.PASS and verdict.reasons == ()


def test_replay_is_deterministic():
    gate = freeze_gate(weekend(), business_hours())
    for c in (ctx(SATURDAY), ctx(SATURDAY, freeze_override_by="alice", freeze_override_reason=REASON),
              ctx(berlin(2026, 3, 11, 12))):
        verdict, inputs = evaluate_gate(gate, c)
        again = replay_gate(gate, inputs, at=c.now)
        assert again == verdict
        # the recorded inputs carry the windows: a gate configured differently replays the same verdict
        assert replay_gate(freeze_gate(), inputs, at=c.now).model_dump(exclude={"gate_name"}) == \
            verdict.model_dump(exclude={"gate_name"})


def test_naive_now_fails_closed():
    verdict, _ = evaluate_gate(freeze_gate(weekend()), ctx(datetime(2026, 3, 14, 12)))
    assert verdict.verdict == Verdict.FAIL and verdict.reasons == ("freeze.error",)
