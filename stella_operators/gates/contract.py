"""The gate contract: collect inputs, decide purely from them, record a hash of the inputs.

A gate is split in two so that a recorded verdict can be replayed:
  collect(ctx) -> inputs   everything the decision depends on, as JSON-able data (reports read,
                           approvals seen, the evaluation time); may do I/O
  decide(inputs) -> Decision   pure and deterministic: same inputs, same decision
`evaluate_gate` runs both, hashes the inputs (RFC 8785 + SHA-256) and fails closed on any error.
Gate types are plugins: entry point group `stella_operators.gates`, name -> Gate class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from stella_operators.release.model import Release

GATES_GROUP = "stella_operators.gates"


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"


class GateConfigError(ValueError):
    """A gate's configuration in the estate is wrong; `path` is relative to the gate entry."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class Decision(BaseModel):
    """What `decide` returns. Reason codes are stable identifiers (`security.critical_over_max`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verdict: Verdict
    reasons: tuple[str, ...] = ()
    message: str = ""
    remedy: str = ""                 # what would clear it ("why blocked?")
    details: dict[str, Any] = {}


class GateVerdict(BaseModel):
    """A recorded verdict: the decision plus which gate, when, and the hash of its inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate_type: str
    gate_name: str
    verdict: Verdict
    reasons: tuple[str, ...]
    message: str
    remedy: str = ""
    details: dict[str, Any] = {}
    inputs_hash: str
    evaluated_at: datetime


@dataclass(frozen=True)
class PromotionContext:
    """What a gate may look at. `now` is the evaluation time (an input, so replay is exact)."""

    app: str
    environment: str
    release: Release
    promotion_id: str
    requested_by: str
    now: datetime
    previous_release: Release | None = None      # currently deployed in this environment
    earlier_verdicts: tuple[GateVerdict, ...] = ()  # verdicts of the gates evaluated before this one
    labels: dict[str, str] = field(default_factory=dict)
    upstream_verified: dict[str, bool] = field(default_factory=dict)  # env -> release verified there
    # repository ("host/path") -> (registry client, path in that registry); for gates that read the
    # registry (provenance). None: the caller gave no registry access (such gates fail closed).
    registry: Callable[[str], tuple[Any, str]] | None = None


class Gate(Protocol):
    type: ClassVar[str]
    name: str

    def collect(self, ctx: PromotionContext) -> dict[str, Any]: ...

    def decide(self, inputs: dict[str, Any]) -> Decision: ...


def _inputs_hash(inputs: dict[str, Any]) -> str:
    from stella_operators.evidence.canonical import canonical_json, sha256_hex

    return "sha256:" + sha256_hex(canonical_json(inputs))


def _verdict(gate: Gate, decision: Decision, inputs_hash: str, at: datetime) -> GateVerdict:
    reasons = tuple(sorted(set(decision.reasons)))
    if decision.verdict != Verdict.PASS and not reasons:
        reasons = (f"{gate.type}.unspecified",)
    return GateVerdict(gate_type=gate.type, gate_name=gate.name, verdict=decision.verdict, reasons=reasons,
                       message=decision.message, remedy=decision.remedy, details=decision.details,
                       inputs_hash=inputs_hash, evaluated_at=at)


def evaluate_gate(gate: Gate, ctx: PromotionContext) -> tuple[GateVerdict, dict[str, Any]]:
    """Collect and decide; any exception fails closed with reason `<type>.error`. Returns (verdict, inputs)."""
    try:
        inputs = gate.collect(ctx)
    except Exception as exc:  # fail closed: a gate that cannot look cannot pass
        inputs = {"error": f"{type(exc).__name__}: {exc}", "now": ctx.now.isoformat()}
        decision = Decision(verdict=Verdict.FAIL, reasons=(f"{gate.type}.error",),
                            message=f"{gate.name}: could not collect inputs: {exc}",
                            remedy="fix the input source and promote again")
        return _verdict(gate, decision, _inputs_hash(inputs), ctx.now), inputs
    return replay_gate(gate, inputs, at=ctx.now), inputs


def replay_gate(gate: Gate, inputs: dict[str, Any], *, at: datetime) -> GateVerdict:
    """Decide from recorded inputs. Same inputs -> same verdict (the determinism evidence relies on)."""
    try:
        decision = gate.decide(inputs)
    except Exception as exc:
        decision = Decision(verdict=Verdict.FAIL, reasons=(f"{gate.type}.error",),
                            message=f"{gate.name}: decision failed: {exc}", remedy="fix the gate configuration")
    return _verdict(gate, decision, _inputs_hash(inputs), at)
