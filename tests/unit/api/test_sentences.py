"""How a promotion's end reads on the pages and in `stella why`: the sentence names who or what ended it."""

from __future__ import annotations

from stella_operators.api.sentences import ended_sentence


def test_a_failed_gate_is_not_blamed_on_an_approver():
    text = ended_sentence("rejected", "stella", {"failed_gates": ["policy"]}, "stage")
    assert "policy" in text and "did not pass" in text
    assert "approver" not in text.replace("approvals cannot outvote", "")


def test_a_rejection_names_the_approver():
    assert ended_sentence("rejected", "bob", {"rejected_by": "bob"}, "stage") == \
        "bob rejected it, so it ended without deploying."
    assert ended_sentence("rejected", "carol", {}, "stage").startswith("carol rejected it")


def test_an_approval_timeout_reads_as_failing_closed():
    assert "fail closed" in ended_sentence("failed", "stella", {"reason": "approval.timeout"}, "stage")


def test_a_gate_named_after_its_type_is_named_once():
    from stella_operators.api.sentences import gate_sentence

    assert gate_sentence({"gate": "policy", "type": "policy", "verdict": "pass",
                          "message": "policy: all 1 policy rule(s) allow"}) == \
        "Gate policy passed: all 1 policy rule(s) allow."
    assert gate_sentence({"gate": "no-friday", "type": "freeze", "verdict": "fail", "message": "frozen",
                          "remedy": "wait until Monday"}) == \
        "Gate no-friday (freeze) failed: frozen. To clear it: wait until Monday."
