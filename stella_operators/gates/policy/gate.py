"""The policy gate: declarative rules in CEL (Common Expression Language) over the promotion context.

Expressions are evaluated by `cel-python` (package `celpy`) with its tree-walking interpreter
(`InterpretedRunner`); nothing is ever turned into Python source, `eval`'d or `exec`'d.

Config:
    rules:
      - id: no-weekend-prod            # stable: the reason code is `policy.<id>`
        description: no production deploys at weekends
        when: environment.name == "prod"          # optional guard: the rule applies only if true
        deny_if: now_weekday_utc >= 5             # exactly one of deny_if / pending_if / allow_if
        message: production deploys are not allowed at weekends

Semantics: every rule is evaluated in order. A `deny_if` that is true fails the gate; a
`pending_if` that is true holds it (PENDING); an `allow_if` states a requirement: false fails the
gate. Any deny or unmet requirement -> FAIL with `policy.<id>` for each; otherwise any pending ->
PENDING with `policy.<id>`; otherwise PASS. An expression that errors at run time (a missing field,
a type mismatch) or does not return a bool fails closed with `policy.error`, naming the rule.
Every expression is compiled when the gate is built, so a syntax error is a GateConfigError at
estate validation time, with the path `rules[<index>].<field>`.

The evaluation context (CEL variables):
    release       {id, name, app, content_hash, created_by, created_at: timestamp, state,
                   source: map(string, string),
                   components: [{name, repository, digest, tag (string or null)}]}
    previous_release   the release currently in the environment (same shape), or null
    environment   {name}
    promotion     {id, requested_by, labels: map(string, string)}
    gates         {<gate name>: {type, verdict ("pass"|"fail"|"pending"), reasons: [string]}}
                  for the gates evaluated before this one
    now           timestamp (the evaluation time)
    now_hour_utc      int, 0-23
    now_weekday_utc   int, 0 = Monday ... 6 = Sunday (note: CEL's own
                      `now.getDayOfWeek()` counts 0 = Sunday)
Use `has(x.field)` to test for an optional field; reading a missing one is an error (fail closed).

Inputs (recorded, replayable): {"rules": [...], "context": {...}} with timestamps as ISO-8601
strings; `decide` converts them to CEL values (and derives now_hour_utc / now_weekday_utc) and
evaluates. The rules are part of the inputs, so a recorded verdict names the policy it applied.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import celpy
from celpy import celtypes
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stella_operators.cel import CelExpressionError as PolicyExpressionError
from stella_operators.cel import compile_expression
from stella_operators.gates.contract import Decision, GateConfigError, PromotionContext, Verdict
from stella_operators.release.model import Release

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*(?:\.[a-z0-9][a-z0-9_-]*)*$")
RESERVED_IDS = {"error", "unspecified"}
ACTIONS: tuple[Literal["deny_if", "pending_if", "allow_if"], ...] = ("deny_if", "pending_if", "allow_if")
#: context paths holding timestamps (converted to CEL timestamps in `decide`)
TIMESTAMP_PATHS = (("now",), ("release", "created_at"), ("previous_release", "created_at"))


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="stable reason code suffix: the reason code is policy.<id>")
    description: str = ""
    when: str | None = None
    deny_if: str | None = None
    pending_if: str | None = None
    allow_if: str | None = None
    message: str = ""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID.match(v):
            raise ValueError("rule id must be lowercase letters, digits, '-', '_' (dot-separated parts allowed)")
        if v in RESERVED_IDS:
            raise ValueError(f"rule id {v!r} is reserved")
        return v

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        given = [a for a in ACTIONS if getattr(self, a) is not None]
        if len(given) != 1:
            raise ValueError(f"rule {self.id!r} needs exactly one of deny_if, pending_if, allow_if "
                             f"(got {', '.join(given) or 'none'})")
        return self

    @property
    def action(self) -> Literal["deny_if", "pending_if", "allow_if"]:
        return next(a for a in ACTIONS if getattr(self, a) is not None)

    @property
    def expression(self) -> str:
        expression: str = getattr(self, self.action)
        return expression

    def text(self) -> str:
        return self.message or self.description or self.id


def _to_cel(value: Any, path: tuple[str, ...] = ()) -> Any:
    """JSON -> CEL values; the timestamp paths become CEL timestamps."""
    if path in TIMESTAMP_PATHS and isinstance(value, str):
        return celtypes.TimestampType(datetime.fromisoformat(value).astimezone(UTC))
    if isinstance(value, dict):
        return celtypes.MapType({celtypes.StringType(k): _to_cel(v, (*path, k)) for k, v in value.items()})
    if isinstance(value, list):
        return celtypes.ListType([_to_cel(v, path) for v in value])
    return celpy.json_to_cel(value)


def _release(r: Release | None) -> dict[str, Any] | None:
    if r is None:
        return None
    return {
        "id": r.id, "name": r.name, "app": r.app, "content_hash": r.content_hash, "created_by": r.created_by,
        "created_at": r.created_at.isoformat(), "state": str(r.state.value), "source": dict(r.source),
        "components": [{"name": c.name, "repository": c.repository, "digest": c.digest, "tag": c.tag}
                       for c in r.components],
    }


class _RuleError(Exception):
    def __init__(self, index: int, rule: Rule, field: str, message: str):
        super().__init__(f"rules[{index}].{field} ({rule.id}): {message}")
        self.index, self.rule, self.field, self.message = index, rule, field, message


def _evaluate(index: int, rule: Rule, field: str, activation: dict[str, Any]) -> bool:
    text = getattr(rule, field)
    try:
        result = compile_expression(text).evaluate(activation)
    except PolicyExpressionError as exc:
        raise _RuleError(index, rule, field, str(exc)) from None
    except Exception as exc:  # CELEvalError and anything else: fail closed
        detail = exc.args[0] if isinstance(exc, celpy.CELEvalError) and exc.args else exc
        raise _RuleError(index, rule, field, f"evaluation failed: {detail}") from None
    if not isinstance(result, celtypes.BoolType | bool):
        raise _RuleError(index, rule, field, f"must evaluate to a bool, got {type(result).__name__} {result!r}")
    return bool(result)


class PolicyGate:
    """Gate type "policy". Config: `rules`, a list of Rule."""

    type: ClassVar[str] = "policy"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)

        rules: tuple[Rule, ...] = ()

        @field_validator("rules")
        @classmethod
        def _unique_ids(cls, v: tuple[Rule, ...]) -> tuple[Rule, ...]:
            ids = [r.id for r in v]
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            if dupes:
                raise ValueError(f"rule ids must be unique (repeated: {', '.join(dupes)})")
            return v

    def __init__(self, name: str, config: Config):
        self.name = name
        self.config = config
        for i, rule in enumerate(config.rules):       # compile everything now: errors at validation time
            for field in ("when", *ACTIONS):
                text = getattr(rule, field)
                if text is None:
                    continue
                try:
                    compile_expression(text)
                except PolicyExpressionError as exc:
                    raise GateConfigError(f"rules[{i}].{field}", f"rule {rule.id!r}: {exc}") from None

    # -- collect -----------------------------------------------------------------------------------
    def collect(self, ctx: PromotionContext) -> dict[str, Any]:
        return {
            "rules": [r.model_dump(mode="json", exclude_none=True) for r in self.config.rules],
            "context": {
                "release": _release(ctx.release),
                "previous_release": _release(ctx.previous_release),
                "environment": {"name": ctx.environment},
                "promotion": {"id": ctx.promotion_id, "requested_by": ctx.requested_by, "labels": dict(ctx.labels)},
                "gates": {v.gate_name: {"type": v.gate_type, "verdict": str(v.verdict.value),
                                        "reasons": list(v.reasons)} for v in ctx.earlier_verdicts},
                "now": ctx.now.isoformat(),
            },
        }

    # -- decide (pure) -----------------------------------------------------------------------------
    def decide(self, inputs: dict[str, Any]) -> Decision:
        rules = [Rule.model_validate(r) for r in inputs["rules"]]
        context = dict(inputs["context"])
        now = datetime.fromisoformat(context["now"])
        if now.tzinfo is None:
            raise ValueError(f"evaluation time {context['now']!r} has no time zone")
        now_utc = now.astimezone(UTC)
        activation = {k: _to_cel(v, (k,)) for k, v in context.items()}
        activation["now_hour_utc"] = celtypes.IntType(now_utc.hour)
        activation["now_weekday_utc"] = celtypes.IntType(now_utc.weekday())

        denied: list[tuple[int, Rule]] = []
        pending: list[tuple[int, Rule]] = []
        unmet: list[tuple[int, Rule]] = []
        skipped: list[str] = []
        errors: list[_RuleError] = []
        for i, rule in enumerate(rules):
            try:
                if rule.when is not None and not _evaluate(i, rule, "when", activation):
                    skipped.append(rule.id)
                    continue
                hit = _evaluate(i, rule, rule.action, activation)
            except _RuleError as exc:
                errors.append(exc)
                continue
            if rule.action == "deny_if" and hit:
                denied.append((i, rule))
            elif rule.action == "pending_if" and hit:
                pending.append((i, rule))
            elif rule.action == "allow_if" and not hit:
                unmet.append((i, rule))

        details = {
            "denied": [r.id for _, r in denied], "pending": [r.id for _, r in pending],
            "unmet": [r.id for _, r in unmet], "skipped": skipped,
            "errors": [{"rule": e.rule.id, "path": f"rules[{e.index}].{e.field}", "error": e.message} for e in errors],
            "evaluated": len(rules),
        }
        if errors or denied or unmet:
            reasons = (["policy.error"] if errors else []) + [f"policy.{r.id}" for _, r in denied + unmet]
            lines = [f"rule {e.rule.id!r} (rules[{e.index}].{e.field}) could not be evaluated: {e.message}"
                     for e in errors]
            lines += [f"rule {r.id!r} denies: {r.text()}" for _, r in denied]
            lines += [f"rule {r.id!r} is not met: {r.text()}" for _, r in unmet]
            remedy = []
            if errors:
                remedy.append("fix the policy rule(s) " + ", ".join(repr(e.rule.id) for e in errors)
                              + " (a rule that cannot be evaluated fails closed)")
            if denied or unmet:
                remedy.append("change the release or promotion so that " +
                              ", ".join(repr(r.id) for _, r in denied + unmet)
                              + (" no longer blocks it" if len(denied + unmet) == 1 else " no longer block it")
                              + " (or change the policy through review)")
            return Decision(verdict=Verdict.FAIL, reasons=tuple(reasons),
                            message=f"{self.name}: " + "; ".join(lines), remedy="; ".join(remedy), details=details)
        if pending:
            holds = "; ".join(f"rule {r.id!r} holds: {r.text()}" for _, r in pending)
            return Decision(verdict=Verdict.PENDING, reasons=tuple(f"policy.{r.id}" for _, r in pending),
                            message=f"{self.name}: {holds}",
                            remedy="wait until the holding condition clears, then evaluate again",
                            details=details)
        return Decision(verdict=Verdict.PASS, message=f"{self.name}: all {len(rules)} policy rule(s) allow",
                        details=details)
