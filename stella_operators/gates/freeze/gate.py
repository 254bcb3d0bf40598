"""The freeze window gate: no promotion into an environment while one of its freeze windows is active.

Inputs (recorded, replayable): the evaluation time, the windows as configured at that time, and the
override request if any. An override request comes in through the promotion context's labels:
  labels["freeze_override_by"]      the Airflow user asking to override (identity from Airflow auth)
  labels["freeze_override_reason"]  their written reason (at least 10 characters)
The override passes only if that user is on the `overriders` list of EVERY active deny window (and,
when frozen because no allow window is active, on the list of at least one allow window). A passed
override has reason code `freeze.overridden`; the caller records it as evidence of its own and
requires one extra approval.

Reason codes: freeze.window_active, freeze.outside_allow_window, freeze.overridden,
freeze.override_refused, freeze.override_reason_missing (and freeze.error from the contract).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from stella_operators.gates.contract import Decision, PromotionContext, Verdict
from stella_operators.gates.freeze.windows import (
    FreezeState,
    FreezeWindow,
    Occurrence,
    is_frozen,
)

OVERRIDE_BY_LABEL = "freeze_override_by"
OVERRIDE_REASON_LABEL = "freeze_override_reason"
MIN_REASON_LENGTH = 10


def format_instant(at: datetime, zone: Any | None = None) -> str:
    """'2026-03-30 08:00 CEST (Europe/Berlin)' in `zone`, or '2026-03-30 06:00 UTC'."""
    local = at.astimezone(zone or UTC)
    fmt = "%Y-%m-%d %H:%M:%S" if local.second or local.microsecond else "%Y-%m-%d %H:%M"
    if zone is None:
        return local.strftime(fmt) + " UTC"
    return f"{local.strftime(fmt)} {local.tzname()} ({getattr(zone, 'key', zone)})"


def _both(at: datetime, zone: Any) -> str:
    return f"{format_instant(at, zone)} = {format_instant(at)}"


class FreezeGate:
    """Gate type "freeze". Config: `windows`, a list of FreezeWindow (see freeze.windows), and
    `at_deploy`: the deploy step checks the windows again (a promotion may wait for approvals into
    a window); when frozen then, `wait` until the window ends (deferred) or `fail` the promotion."""

    type: ClassVar[str] = "freeze"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        windows: tuple[FreezeWindow, ...] = ()
        at_deploy: Literal["wait", "fail"] = "fail"

        @field_validator("windows")
        @classmethod
        def _unique_names(cls, v: tuple[FreezeWindow, ...]) -> tuple[FreezeWindow, ...]:
            names = [w.name for w in v]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"window names must be unique (repeated: {', '.join(dupes)})")
            return v

    def __init__(self, name: str, config: Config):
        self.name = name
        self.config = config

    # -- collect: everything the decision depends on, JSON-able -----------------------------------
    def collect(self, ctx: PromotionContext) -> dict[str, Any]:
        by = (ctx.labels.get(OVERRIDE_BY_LABEL) or "").strip()
        reason = (ctx.labels.get(OVERRIDE_REASON_LABEL) or "").strip()
        return {
            "now": ctx.now.isoformat(),
            "environment": ctx.environment,
            "windows": [w.model_dump(mode="json") for w in self.config.windows],
            "override": {"by": by, "reason": reason} if (by or reason) else None,
        }

    # -- decide: pure ------------------------------------------------------------------------------
    def decide(self, inputs: dict[str, Any]) -> Decision:
        now = datetime.fromisoformat(inputs["now"])
        if now.tzinfo is None:
            raise ValueError(f"evaluation time {inputs['now']!r} has no time zone")
        windows = [FreezeWindow.model_validate(w) for w in inputs.get("windows", [])]
        state = is_frozen(windows, now)
        if not state.frozen:
            return Decision(verdict=Verdict.PASS, message=f"{self.name}: no freeze window is active",
                            details={"active_allow": [o.window.name for o in state.allow]})

        blocking = self._blocking(state)
        details: dict[str, Any] = {
            "frozen_by": [self._occ_details(o) for o in state.deny],
            "outside_allow_windows": bool(state.allow_windows and not state.allow),
            "opens_at": state.ends_at.isoformat() if state.ends_at else None,
            "may_override": sorted(self._may_override(state)),
        }
        what = self._what(state)
        when = self._when(state)
        override = inputs.get("override") or None
        if override is None:
            return Decision(
                verdict=Verdict.FAIL, reasons=(f"freeze.{state.reason.value}",),
                message=f"{self.name}: frozen: {what}; {when}",
                remedy=self._remedy(state), details=details)

        by = (override.get("by") or "").strip()
        reason = (override.get("reason") or "").strip()
        details |= {"override_by": by, "reason": reason}
        allowed = self._may_override(state)
        problems: list[str] = []
        reasons: list[str] = []
        if not by or by not in allowed:
            reasons.append("freeze.override_refused")
            who = by or "an unidentified user"
            if allowed:
                problems.append(f"{who} may not override {blocking}; only {', '.join(sorted(allowed))} may")
            else:
                problems.append(f"{who} may not override {blocking}: {self._nobody(state)}")
        if len(reason) < MIN_REASON_LENGTH:
            reasons.append("freeze.override_reason_missing")
            problems.append(f"an override needs a written reason of at least {MIN_REASON_LENGTH} characters")
        if reasons:
            return Decision(
                verdict=Verdict.FAIL, reasons=tuple(reasons),
                message=f"{self.name}: frozen: {what}; override refused: {'; '.join(problems)}; {when}",
                remedy=self._remedy(state), details=details)

        names = [o.window.name for o in state.deny]
        if state.allow_windows and not state.allow:
            names += [w.name for w in state.allow_windows]
        return Decision(
            verdict=Verdict.PASS, reasons=("freeze.overridden",),
            message=f"{self.name}: frozen ({what}) but overridden by {by}: {reason}",
            remedy="an overridden freeze needs one extra approval",
            details={**details, "windows": names})

    # -- helpers -----------------------------------------------------------------------------------
    @staticmethod
    def _may_override(state: FreezeState) -> set[str]:
        """Users on the list of every active deny window (and of some allow window when outside them)."""
        sets: list[set[str]] = [set(o.window.overriders) for o in state.deny]
        if state.allow_windows and not state.allow:
            sets.append({u for w in state.allow_windows for u in w.overriders})
        if not sets:
            return set()
        return set.intersection(*sets)

    @staticmethod
    def _nobody(state: FreezeState) -> str:
        lists = [(f"{o.window.name!r}", o.window.overriders) for o in state.deny]
        if state.allow_windows and not state.allow:
            lists.append(("the allow windows", tuple(u for w in state.allow_windows for u in w.overriders)))
        if not any(users for _, users in lists):
            return "nobody may override this freeze"
        shown = "; ".join(f"{what}: {', '.join(sorted(set(users))) or 'nobody'}" for what, users in lists)
        return f"nobody may override this freeze: no user is on the overriders list of every window ({shown})"

    @staticmethod
    def _blocking(state: FreezeState) -> str:
        parts = [f"deny window {o.window.name!r}" for o in state.deny]
        if state.allow_windows and not state.allow:
            parts.append("the allow windows " + ", ".join(repr(w.name) for w in state.allow_windows))
        return " and ".join(parts)

    @staticmethod
    def _occ_details(o: Occurrence) -> dict[str, Any]:
        return {"window": o.window.name, "timezone": o.window.timezone,
                "start": o.local_start.isoformat(), "end": o.local_end.isoformat(),
                "end_utc": o.end.isoformat(), "overriders": list(o.window.overriders),
                "description": o.window.description}

    @staticmethod
    def _what(state: FreezeState) -> str:
        parts = []
        for o in state.deny:
            desc = f" ({o.window.description})" if o.window.description else ""
            parts.append(f"deny window {o.window.name!r}{desc} is active until {_both(o.end, o.window.zone)}")
        if state.allow_windows and not state.allow:
            parts.append("outside the allow windows " + ", ".join(repr(w.name) for w in state.allow_windows))
        return "; ".join(parts)

    @staticmethod
    def _zone(state: FreezeState) -> Any:
        if state.deny:
            return state.deny[0].window.zone
        return state.allow_windows[0].zone if state.allow_windows else None

    def _when(self, state: FreezeState) -> str:
        if state.ends_at is None:
            return "the freeze does not end within the next 366 days"
        zone = self._zone(state)
        return f"deployments open again at {_both(state.ends_at, zone) if zone else format_instant(state.ends_at)}"

    def _remedy(self, state: FreezeState) -> str:
        allowed = sorted(self._may_override(state))
        if state.ends_at is not None:
            zone = self._zone(state)
            wait = f"wait until {_both(state.ends_at, zone) if zone else format_instant(state.ends_at)}"
        else:
            wait = "wait until the freeze is lifted"
        if allowed:
            return f"{wait} or have one of {', '.join(allowed)} override with a written reason"
        return f"{wait}; {self._nobody(state)}"
