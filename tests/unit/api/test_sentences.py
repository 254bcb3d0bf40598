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
