"""The policy gate: CEL rules, deny / pending / allow, guards, config errors, fail closed, replay."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stella_operators.gates.contract import (
    GateConfigError,
    GateVerdict,
    PromotionContext,
    Verdict,
    evaluate_gate,
    replay_gate,
)
from stella_operators.gates.policy import PolicyGate
from stella_operators.gates.registry import build_gate
from stella_operators.release.model import ComponentDigest, Release

TYPES = {"policy": PolicyGate}
WEDNESDAY = datetime(2026, 3, 11, 10, 30, tzinfo=UTC)
SATURDAY = datetime(2026, 3, 14, 10, 30, tzinfo=UTC)


def release(**kw) -> Release:
    spec = dict(id="r1", app="shop", name="1.4.0", created_at=datetime(2026, 3, 10, 9, tzinfo=UTC),
                created_by="dave",
                components=[ComponentDigest(name="web", repository="registry.example/shop/web",
                                            digest="sha256:" + "a" * 64, tag="1.4.0"),
                            ComponentDigest(name="worker", repository="registry.example/shop/worker",
                                            digest="sha256:" + "b" * 64)])
    spec.update(kw)
    return Release.seal(**spec)


def verdict(gate: str, v: Verdict, *reasons: str) -> GateVerdict:
    return GateVerdict(gate_type=gate, gate_name=gate, verdict=v, reasons=reasons, message="",
                       inputs_hash="sha256:" + "0" * 64, evaluated_at=WEDNESDAY)


def ctx(now: datetime = WEDNESDAY, environment: str = "prod", **kw) -> PromotionContext:
    spec = dict(app="shop", environment=environment, release=release(), promotion_id="p-42", requested_by="erin",
                now=now)
    spec.update(kw)
    return PromotionContext(**spec)


def gate(*rules: dict) -> PolicyGate:
    return build_gate({"type": "policy", "name": "prod-policy", "rules": list(rules)}, types=TYPES)


NO_WEEKENDS = {"id": "no-weekend-prod", "description": "no production deploys at weekends",
               "when": 'environment.name == "prod"', "deny_if": "now_weekday_utc >= 5",
               "message": "production deploys are not allowed on Saturday or Sunday"}
SECURITY_PASSED = {"id": "security-passed", "description": "the security gate must have passed",
                   "allow_if": 'has(gates.security) && gates.security.verdict == "pass"'}
CHANGE_TICKET = {"id": "change-ticket", "description": "a change ticket is attached",
                 "pending_if": '!has(promotion.labels.change_ticket)'}


def test_pass_when_nothing_blocks():
    v, inputs = evaluate_gate(gate(NO_WEEKENDS, SECURITY_PASSED, CHANGE_TICKET),
                              ctx(earlier_verdicts=(verdict("security", Verdict.PASS),),
                                  labels={"change_ticket": "CHG-1"}))
    assert v.verdict == Verdict.PASS and v.reasons == ()
    assert v.details["evaluated"] == 3 and v.details["errors"] == []
    # JSON-able inputs, timestamps as ISO strings
    assert inputs["context"]["now"] == "2026-03-11T10:30:00+00:00"
    assert inputs["context"]["release"]["created_at"] == "2026-03-10T09:00:00+00:00"
    assert inputs["context"]["gates"] == {"security": {"type": "security", "verdict": "pass", "reasons": []}}
    assert [r["id"] for r in inputs["rules"]] == ["no-weekend-prod", "security-passed", "change-ticket"]


def test_deny_on_weekends_uses_time():
    v, _ = evaluate_gate(gate(NO_WEEKENDS), ctx(now=SATURDAY))
    assert v.verdict == Verdict.FAIL and v.reasons == ("policy.no-weekend-prod",)
    assert "not allowed on Saturday or Sunday" in v.message
    assert v.details["denied"] == ["no-weekend-prod"]
    assert evaluate_gate(gate(NO_WEEKENDS), ctx(now=WEDNESDAY))[0].verdict == Verdict.PASS
    # now is a CEL timestamp too
    late = {"id": "late", "deny_if": 'now_hour_utc >= 18 || now > timestamp("2026-12-31T00:00:00Z")'}
    assert evaluate_gate(gate(late), ctx(now=datetime(2026, 3, 11, 18, tzinfo=UTC)))[0].verdict == Verdict.FAIL
    assert evaluate_gate(gate(late), ctx(now=datetime(2026, 3, 11, 17, 59, tzinfo=UTC)))[0].verdict == Verdict.PASS


def test_when_guard():
    # the weekend rule only applies to prod
    v, _ = evaluate_gate(gate(NO_WEEKENDS), ctx(now=SATURDAY, environment="staging"))
    assert v.verdict == Verdict.PASS and v.details["skipped"] == ["no-weekend-prod"]


def test_pending():
    v, _ = evaluate_gate(gate(CHANGE_TICKET), ctx())
    assert v.verdict == Verdict.PENDING and v.reasons == ("policy.change-ticket",)
    assert "a change ticket is attached" in v.message
    assert evaluate_gate(gate(CHANGE_TICKET), ctx(labels={"change_ticket": "CHG-9"}))[0].verdict == Verdict.PASS


def test_deny_beats_pending():
    v, _ = evaluate_gate(gate(CHANGE_TICKET, NO_WEEKENDS), ctx(now=SATURDAY))
    assert v.verdict == Verdict.FAIL and v.reasons == ("policy.no-weekend-prod",)
    assert v.details["pending"] == ["change-ticket"]


def test_allow_rule_is_a_requirement_on_earlier_gate_verdicts():
    g = gate(SECURITY_PASSED)
    ok, _ = evaluate_gate(g, ctx(earlier_verdicts=(verdict("security", Verdict.PASS),)))
    assert ok.verdict == Verdict.PASS
    bad, _ = evaluate_gate(g, ctx(earlier_verdicts=(verdict("security", Verdict.FAIL, "security.critical_over_max"),)))
    assert bad.verdict == Verdict.FAIL and bad.reasons == ("policy.security-passed",)
    assert "is not met: the security gate must have passed" in bad.message
    missing, _ = evaluate_gate(g, ctx())
    assert missing.verdict == Verdict.FAIL and missing.reasons == ("policy.security-passed",)
    # reasons of earlier gates are visible too
    no_kev = {"id": "no-kev", "deny_if": 'gates.security.reasons.exists(r, r == "security.kev_listed")'}
    kev_failed = verdict("security", Verdict.FAIL, "security.kev_listed")
    kev, _ = evaluate_gate(gate(no_kev), ctx(earlier_verdicts=(kev_failed,)))
    assert kev.reasons == ("policy.no-kev",)


def test_release_fields():
    rules = [
        {"id": "sealed", "allow_if": 'release.state == "sealed" && release.content_hash.startsWith("sha256:")'},
        {"id": "no-latest-tag", "deny_if": 'release.components.exists(c, c.tag == "latest")'},
        {"id": "self-promotion", "pending_if": "release.created_by == promotion.requested_by"},
        {"id": "fresh", "deny_if": 'now - release.created_at > duration("720h")'},
        {"id": "repo", "allow_if": 'release.components.all(c, c.repository.startsWith("registry.example/shop/"))'},
        {"id": "first-deploy", "pending_if": "previous_release == null && false"},
    ]
    assert evaluate_gate(gate(*rules), ctx())[0].verdict == Verdict.PASS
    latest = release(components=[ComponentDigest(name="web", repository="registry.example/shop/web",
                                                 digest="sha256:" + "c" * 64, tag="latest")])
    v, _ = evaluate_gate(gate(*rules), ctx(release=latest, requested_by="dave"))
    assert v.verdict == Verdict.FAIL and v.reasons == ("policy.no-latest-tag",)
    assert v.details["pending"] == ["self-promotion"]
    old, _ = evaluate_gate(gate(*rules), ctx(now=datetime(2026, 5, 1, tzinfo=UTC)))
    assert old.reasons == ("policy.fresh",)


def test_syntax_error_is_a_config_error_naming_rule_and_field():
    with pytest.raises(GateConfigError) as e:
        gate(NO_WEEKENDS, SECURITY_PASSED, {"id": "broken", "deny_if": 'release.name == "x" &&'})
    assert e.value.path == "rules[2].deny_if"
    assert "broken" in str(e.value) and "syntax" in str(e.value)
    with pytest.raises(GateConfigError) as e:
        gate({"id": "guarded", "when": "environment.name ==", "deny_if": "true"})
    assert e.value.path == "rules[0].when"


@pytest.mark.parametrize("rule, match", [
    ({"id": "two", "deny_if": "true", "allow_if": "true"}, "exactly one"),
    ({"id": "none"}, "exactly one"),
    ({"id": "Bad Id", "deny_if": "true"}, "rule id"),
    ({"id": "error", "deny_if": "true"}, "reserved"),
    ({"id": "x", "deny_if": "true", "severity": "high"}, "unknown key"),
])
def test_invalid_rules(rule, match):
    with pytest.raises(GateConfigError, match=match):
        gate(rule)


def test_duplicate_rule_ids():
    with pytest.raises(GateConfigError, match="unique"):
        gate(NO_WEEKENDS, NO_WEEKENDS)


def test_runtime_error_fails_closed():
    missing = {"id": "needs-ticket", "deny_if": 'promotion.labels.change_ticket == ""'}
    v, _ = evaluate_gate(gate(missing), ctx())
    assert v.verdict == Verdict.FAIL and v.reasons == ("policy.error",)
    assert "needs-ticket" in v.message and "change_ticket" in v.message
    assert v.details["errors"][0]["path"] == "rules[0].deny_if"
    # a type error, and a non-bool result, fail closed too; other rules are still reported
    typed = {"id": "typed", "deny_if": 'release.name + 1 == "x"'}
    nonbool = {"id": "nonbool", "allow_if": "release.name"}
    v, _ = evaluate_gate(gate(typed, nonbool, NO_WEEKENDS), ctx(now=SATURDAY))
    assert v.verdict == Verdict.FAIL
    assert v.reasons == ("policy.error", "policy.no-weekend-prod")
    assert [e["rule"] for e in v.details["errors"]] == ["typed", "nonbool"]
    assert "must evaluate to a bool" in v.details["errors"][1]["error"]
    # an error in a guard fails closed as well
    guard = {"id": "guard", "when": "environment.tier == 1", "deny_if": "false"}
    assert evaluate_gate(gate(guard), ctx())[0].reasons == ("policy.error",)
    # an error even if the rest would only be pending
    assert evaluate_gate(gate(missing, CHANGE_TICKET), ctx())[0].verdict == Verdict.FAIL


def test_replay_is_deterministic():
    g = gate(NO_WEEKENDS, SECURITY_PASSED, CHANGE_TICKET)
    for c in (ctx(now=SATURDAY), ctx(earlier_verdicts=(verdict("security", Verdict.PASS),)),
              ctx(earlier_verdicts=(verdict("security", Verdict.PASS),), labels={"change_ticket": "CHG-1"})):
        v, inputs = evaluate_gate(g, c)
        assert replay_gate(g, inputs, at=c.now) == v
        assert replay_gate(g, inputs, at=c.now) == replay_gate(g, inputs, at=c.now)
        # the rules travel with the inputs: a differently configured gate replays the same decision
        other = gate()
        assert replay_gate(other, inputs, at=c.now).model_dump(exclude={"gate_name"}) == \
            v.model_dump(exclude={"gate_name"})
    assert {evaluate_gate(g, c)[0].verdict for c in (ctx(now=SATURDAY), ctx())} == {Verdict.FAIL}


def test_naive_now_fails_closed():
    v, _ = evaluate_gate(gate(NO_WEEKENDS), ctx(now=datetime(2026, 3, 14, 12)))
    assert v.verdict == Verdict.FAIL and v.reasons == ("policy.error",)


def test_no_python_evaluation():
    """CEL is interpreted, never handed to Python's eval: Python syntax is just a CEL error."""
    with pytest.raises(GateConfigError):
        gate({"id": "py", "deny_if": "__import__('os').system('true') or True"})
    v, _ = evaluate_gate(gate({"id": "py", "deny_if": "__import__('os') == 1"}), ctx())
    assert v.reasons == ("policy.error",)
