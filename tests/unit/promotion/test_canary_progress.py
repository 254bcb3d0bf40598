"""A canary's progress read back from a SQLite ledger, as the Releases page, the REST detail,
`stella why` and the board show it: steps walked through the real promotion services (in-memory
hosts and router, tests/unit/promotion/test_canary.py)."""

from __future__ import annotations

from datetime import timedelta

from stella_operators.analysis.evaluate import AnalysisOutcome, Measurement, MetricState
from stella_operators.analysis.runner import AnalysisRun
from stella_operators.api.sentences import canary_sentences, canary_step_line
from stella_operators.api.views import board, why_sentences
from stella_operators.promotion.canary import decide, record_analysis, record_ask, take_step
from stella_operators.promotion.canary_progress import canary_progress
from stella_operators.promotion.state import PromotionStatus as S
from tests.unit.promotion.fakes import T0
from tests.unit.promotion.test_canary import CANARY, GROUPS, begin, fleet  # noqa: F401 - the fixture
from tests.unit.promotion.test_strategies import ROLLING, Fleet


def report(outcome: str, *values: float) -> dict:
    """An analysis report as the AnalysisTrigger's event carries it (analysis/runner.py)."""
    phase = {"pass": "successful", "fail": "failed"}.get(outcome, "inconclusive")
    m = Measurement("inconclusive", (), "no data") if not values else Measurement(
        "successful" if outcome == "pass" else "failed", tuple(values))
    run = AnalysisRun(AnalysisOutcome(outcome, (), (MetricState("error-rate", phase, "", (m,)),)),  # type: ignore[arg-type]
                      {"error-rate": [T0]})
    return run.report()


def progress(fleet, promo):  # noqa: F811
    return canary_progress(fleet.estate, fleet.ledger, fleet.ledger.get_promotion(promo.id))


def step(fleet, promo, k, outcome=None, *values, decision=None, by="stella"):  # noqa: F811
    """Take step k (0-based), record its analysis, then decide (each optional, as the task does)."""
    s = take_step(fleet.estate, fleet.ledger, fleet.key, promo.id, k, fleet.targets)
    rep = None
    if outcome is not None:
        rep = report(outcome, *values)
        record_analysis(fleet.ledger, s, rep)
    if decision is not None:
        decide(fleet.estate, fleet.ledger, fleet.key, promo.id, s, fleet.targets, decision=decision, decided_by=by,
               reason=f"{decision} by {by}", analysis=rep)
    return s


def test_a_canary_walks_its_steps_and_each_is_read_back_with_split_analysis_and_decider(fleet, clock):  # noqa: F811
    promo = begin(fleet)
    p = progress(fleet, promo)
    assert (p.state, p.plan, p.current_step, p.group) == ("starting", [10, 50, 100], None, "canary")
    assert [s.state for s in p.steps] == ["pending"] * 3

    first = step(fleet, promo, 0)                   # traffic moved, baking / analysing
    p = progress(fleet, promo)
    assert (p.state, p.current_step, p.current_weight) == ("walking", 1, 10)
    assert p.distribution == {"stable": 90, "canary": 10} and p.steps[0].router_share == 10
    assert p.steps[0].state == "analysing" and p.steps[0].started_at == clock.now

    decide(fleet.estate, fleet.ledger, fleet.key, promo.id, first, fleet.targets, decision="advance",
           decided_by="stella", analysis=report("pass", 0.01))
    clock.now += timedelta(minutes=1)
    step(fleet, promo, 1, "pass", 0.01, decision="advance")
    p = progress(fleet, promo)
    [first, second, third] = p.steps
    assert (first.state, [d.decided_by for d in first.decisions]) == ("advanced", ["stella"])
    assert first.decisions[0].evidence_id and first.analysis.outcome == "pass"
    assert second.analysis.metrics[0].values == [0.01] and second.router_share == 50
    assert canary_step_line(second.model_dump(mode="json")) == \
        "step 2 of 3: 50 % (router: 50 %) -- analysis pass: error-rate 0.01 -- advanced by stella"
    assert canary_step_line(third.model_dump(mode="json")) == "step 3 of 3: 100 % -- not yet"
    assert [r.id for r in fleet.ledger.evidence_for(promotion_id=promo.id) if str(r.type) == "canary"][-1] == \
        second.decisions[0].evidence_id

    step(fleet, promo, 2, "pass", 0.0, decision="advance")
    fleet.verify(promo)
    p = progress(fleet, promo)
    assert p.state == "completed" and [s.state for s in p.steps] == ["advanced"] * 3
    assert p.distribution == {"stable": 0, "canary": 100}


def test_an_inconclusive_step_waits_for_a_human_since_the_ask_and_records_who_answered(fleet, clock):  # noqa: F811
    promo = begin(fleet)
    step(fleet, promo, 0, "pass", 0.01, decision="advance")
    clock.now += timedelta(minutes=5)
    s = step(fleet, promo, 1, "inconclusive")
    asked_at = clock.now
    record_ask(fleet.ledger, s, 600)
    clock.now += timedelta(minutes=3)
    p = progress(fleet, promo)
    assert p.state == "waiting_for_human" and p.current_weight == 50
    assert p.waiting_for_human_since == asked_at and p.answer_by == asked_at + timedelta(seconds=600)
    data = p.model_dump(mode="json")
    assert canary_step_line(data["steps"][1]) == \
        "step 2 of 3: 50 % (router: 50 %) -- analysis inconclusive: error-rate no data -- waiting for a human"
    said = canary_sentences(data)
    assert said[0] == "It is a canary (10 % -> 50 % -> 100 %), at step 2 of 3 (50 % of new requests to canary)."
    assert said[2].startswith("Step 2 (50 %): the router reported 50 % to the new version; its analysis was "
                              "inconclusive (error-rate no data); it waits for a human since 2026-03-02T09:05:00Z")
    cells = board(fleet.estate, fleet.ledger)
    cell = cells["deployed"]["shop"]["prod"]
    assert cell["canary"]["label"] == "canary 50 %, waiting for a human"
    assert cell["canary"]["waiting_since"] == "2026-03-02T09:05:00Z"
    [row] = cells["timeline"]
    assert row["canary"]["lines"][0].endswith("advanced by stella") and len(row["canary"]["lines"]) == 2
    assert any("waits for a human since" in x for x in why_sentences(fleet.estate, fleet.ledger,
                                                                     fleet.ledger.get_promotion(promo.id)))

    decide(fleet.estate, fleet.ledger, fleet.key, promo.id, s, fleet.targets, decision="hold", decided_by="bob",
           analysis=report("inconclusive"))
    p = progress(fleet, promo)
    assert p.state == "walking" and p.waiting_for_human_since is None
    assert canary_step_line(p.steps[1].model_dump(mode="json")).endswith("held by bob -- analysing again")
    record_analysis(fleet.ledger, s, report("pass", 0.02))
    decide(fleet.estate, fleet.ledger, fleet.key, promo.id, s, fleet.targets, decision="advance", decided_by="stella")
    second = progress(fleet, promo).steps[1]
    assert second.analysis.analyses == 2 and second.analysis.metrics[0].values == [0.02]
    assert canary_step_line(second.model_dump(mode="json")).endswith(
        "analysis pass: error-rate 0.02 -- held by bob, then advanced by stella")


def test_a_failed_step_reads_rolled_back_by_whom_and_the_board_no_longer_shows_a_canary(fleet, clock):  # noqa: F811
    promo = begin(fleet)
    step(fleet, promo, 0, "fail", 0.2, decision="rollback")
    p = progress(fleet, promo)
    assert p.state == "rolled_back" and p.current_weight == 10
    assert [s.state for s in p.steps] == ["rolled_back", "pending", "pending"]
    assert canary_step_line(p.steps[0].model_dump(mode="json")) == \
        "step 1 of 3: 10 % (router: 10 %) -- analysis fail: error-rate 0.2 -- rolled back by stella"
    cells = board(fleet.estate, fleet.ledger)
    assert cells["deployed"]["shop"]["prod"]["canary"] is None
    assert cells["timeline"][0]["canary"]["label"] == "canary rolled back at 10 %"
    said = why_sentences(fleet.estate, fleet.ledger, fleet.ledger.get_promotion(promo.id))
    assert "It was a canary (10 % -> 50 % -> 100 %); it stopped at step 1 (10 %) and was rolled back." in said


def test_a_step_left_asking_when_the_promotion_ended_is_not_said_to_wait(fleet):  # noqa: F811
    from stella_operators.promotion.recovery import roll_back_promotion

    promo = begin(fleet)
    s = step(fleet, promo, 0, "inconclusive")
    record_ask(fleet.ledger, s, 600)
    roll_back_promotion(fleet.estate, fleet.ledger, fleet.key, promo.id, fleet.targets, reason="aborted")
    p = progress(fleet, promo)
    assert p.state == "rolled_back" and p.steps[0].state == "stopped" and p.waiting_for_human_since is None
    assert canary_step_line(p.steps[0].model_dump(mode="json")).endswith("-- stopped here")


def test_other_strategies_have_no_canary(tmp_path, clock):
    f = Fleet(tmp_path, clock, **ROLLING)
    try:
        promo = f.approved(1)
        assert canary_progress(f.estate, f.ledger, promo) is None
        f.deploy_all(promo)
        assert f.status(promo) in (S.VERIFYING, S.DEPLOYED)
        assert canary_progress(f.estate, f.ledger, f.ledger.get_promotion(promo.id)) is None
        assert board(f.estate, f.ledger)["timeline"][0]["canary"] is None
    finally:
        f.ledger.close()


# -- a canary waiting for a human, for the CLI and REST tests (the estate as a file) -----------------

ESTATE_YAML = """
registries: [{host: reg.local}]
approver_groups: [{name: rm, users: [bob]}]
apps: [{name: shop, components: [{name: web, repository: reg.local/shop/web}]}]
environments:
  - name: prod
    requires: []
    strategy: canary
    canary: {router: {type: haproxy, settings: {socket: /x, backend: web}}, steps: [10, 50], bake_s: 0}
    targets:
""" + "".join(f"      - {{name: {n}, type: docker, connection: c_{n}, group: {g}}}\n" for n, g in GROUPS.items())


def waiting_canary(tmp_path, monkeypatch):
    """A promotion whose canary passed step 1 and waits for a human at step 2 (50 %), in
    tmp_path/ledger.db, with tmp_path/estate.yaml describing its environment; returns (fleet, promotion)."""
    from stella_operators.estate import parse_estate
    from stella_operators.promotion import strategies as strategies_module
    from tests.unit.promotion.conftest import Clock
    from tests.unit.promotion.fakes import Workload, digest
    from tests.unit.promotion.test_canary import Recorder

    (tmp_path / "estate.yaml").write_text(ESTATE_YAML)
    clock = Clock()
    f = Fleet(tmp_path, clock, groups=GROUPS, **CANARY)
    f.estate = parse_estate(ESTATE_YAML, source="estate.yaml")
    f.router = Recorder({"h1": 1, "h2": 1, "h3": 0, "h4": 0, "h5": 0}, [])
    for n in ("h1", "h2"):
        f.hosts[n].workloads.append(Workload("shop", "web", digest(1), "dep-0", True))
    monkeypatch.setattr(strategies_module, "router_of", lambda env: f.router)
    promo = begin(f)
    step(f, promo, 0, "pass", 0.01, decision="advance")
    clock.now += timedelta(minutes=5)
    record_ask(f.ledger, step(f, promo, 1, "inconclusive"), 600)
    return f, promo


def test_the_board_cell_says_canary_not_degraded_while_a_second_release_walks(fleet):  # noqa: F811
    first = begin(fleet)
    for k in range(3):
        step(fleet, first, k, "pass", 0.01, decision="advance")
    fleet.verify(first)
    second = fleet.approved(3)
    from stella_operators.promotion.service import deploy_promotion

    deploy_promotion(fleet.estate, fleet.ledger, fleet.key, second.id, fleet.targets)
    step(fleet, second, 0)
    cell = board(fleet.estate, fleet.ledger)["deployed"]["shop"]["prod"]
    assert cell["canary"]["label"] == "canary 10 %" and cell["canary"]["promotion_id"] == second.id
    assert cell["name"] == "shop-2.0.0"
    # the new release on the idle group is the canary, the other group still runs the verified one
    assert {t["target"]: t["release"] for t in cell["targets"]} == {
        "h1": "shop-3.0.0", "h2": "shop-3.0.0", "h3": "shop-2.0.0", "h4": "shop-2.0.0", "h5": "shop-2.0.0"}
    assert not cell["degraded"], cell["problems"]


def test_a_canary_rolled_back_on_a_group_that_ran_nothing_leaves_the_environment_healthy(tmp_path, clock,
                                                                                        monkeypatch):
    """The demo's prod: the first release walked to green; the next one, on blue (which ran nothing),
    failed its first step. Blue runs nothing again, as before: that is not a degraded environment."""
    from stella_operators.promotion import strategies as strategies_module
    from tests.unit.promotion.test_canary import Recorder

    f = Fleet(tmp_path, clock, groups=GROUPS, **CANARY)
    f.router = Recorder({"h1": 1, "h2": 1, "h3": 0, "h4": 0, "h5": 0}, [])
    monkeypatch.setattr(strategies_module, "router_of", lambda env: f.router)
    first = begin(f)
    for k in range(3):
        step(f, first, k, "pass", 0.01, decision="advance")
    f.verify(first)
    second = begin(f)
    assert {n for n, r in f.running().items() if r.get("web")} == {"h1", "h2", "h3", "h4", "h5"}
    step(f, second, 0, "fail", 0.2, decision="rollback")
    assert str(f.ledger.get_promotion(second.id).status) == "rolled_back"
    assert {n for n, r in f.running().items() if r.get("web")} == {"h3", "h4", "h5"}
    cell = board(f.estate, f.ledger)["deployed"]["shop"]["prod"]
    assert not cell["degraded"], cell["problems"]
    assert cell["canary"] is None
    f.ledger.close()
