"""What a person sees when a canary step asks: the step, the split read back, every measurement."""

from __future__ import annotations

from stella_operators.operators.canary import DECISION_OF, OPTIONS, ask_body


def test_the_request_body_shows_the_step_the_split_and_each_measurement():
    step = {"step": 1, "of": 3, "weight": 10, "group": "canary", "distribution": {"stable": 90, "canary": 10}}
    report = {"outcome": "inconclusive", "summary": "error-rate: no data",
              "metrics": [{"name": "error-rate", "phase": "inconclusive",
                           "measurements": [{"phase": "inconclusive", "values": [], "message": "no data"},
                                            {"phase": "successful", "values": [0.01], "message": ""}]}]}
    body = ask_body(step, report, 600)
    assert "Step 1 of 3: **10 %**" in body and '{"stable": 90, "canary": 10}' in body
    assert "**inconclusive** -- error-rate: no data" in body
    assert "`error-rate`: inconclusive -- inconclusive [] no data; successful [0.01]" in body
    assert "No answer within 600 s rolls back" in body


def test_every_option_maps_to_a_decision():
    assert OPTIONS == ["Advance", "Hold", "Roll back"]
    assert [DECISION_OF[o] for o in OPTIONS] == ["advance", "hold", "rollback"]
