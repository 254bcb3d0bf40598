"""Rolling deployments over in-memory targets: batch order, max_unavailable, on_failure.

A shared `Board` records when each target is unavailable -- from the start of its prepare until its
commit (or discard / restore) finished -- so the tests can check the bound at every moment.
"""

from __future__ import annotations

import pytest

from stella_operators.deploy.rollout import RollingPolicy, batch_size_of, cut_batches, run_rolling
from tests.unit.deploy.memory import NEW, OLD, Board, BrokenAfterDiscard, HostInMemory, plan


def hosts(n: int, board: Board, **special: dict) -> list[HostInMemory]:
    out = []
    for i in range(1, n + 1):
        name = f"h{i}"
        kind = special.get(name, {})
        cls = BrokenAfterDiscard if kind.get("broken") else HostInMemory
        out.append(cls(name, board, fail=kind.get("fail", False), restore_fails=kind.get("restore_fails", False)))
    return out


def policy(ts: list[HostInMemory], size: int, *, max_unavailable: int | None = None, pause_s: float = 0,
           on_failure: str = "rollback") -> RollingPolicy:
    return RollingPolicy(batches=cut_batches([t.name for t in ts], size), max_unavailable=max_unavailable or size,
                         pause_s=pause_s, on_failure=on_failure)  # type: ignore[arg-type]


def run(ts: list[HostInMemory], pol: RollingPolicy, **kw):
    return run_rolling([(t, plan(t.name)) for t in ts], pol, max_parallel=8, **kw)


def test_batch_sizes_from_count_or_percent():
    assert batch_size_of(10, batch_size=3) == 3
    assert batch_size_of(2, batch_size=5) == 2
    assert batch_size_of(10, batch_percent=25) == 3      # rounded up
    assert batch_size_of(4, batch_percent=1) == 1        # at least one
    assert batch_size_of(8, batch_percent=50) == 4
    assert cut_batches(["a", "b", "c", "d", "e"], 2) == (("a", "b"), ("c", "d"), ("e",))


def test_batches_run_in_estate_order_one_after_the_other():
    board = Board()
    ts = hosts(5, board)
    seen = []
    out = run(ts, policy(ts, 2), on_batch=lambda b: seen.append((b.index, b.status, list(b.targets))))
    assert out.status == "deployed"
    assert seen == [(0, "deployed", ["h1", "h2"]), (1, "deployed", ["h3", "h4"]), (2, "deployed", ["h5"])]
    # every target of batch 1 prepared before any of batch 2
    assert set(board.order[:2]) == {"h1", "h2"} and set(board.order[2:4]) == {"h3", "h4"}
    assert board.order[4] == "h5"
    assert all(t.running == {"web": NEW} for t in ts)
    assert board.peak == 2


def test_max_unavailable_smaller_than_the_batch_runs_the_batch_in_waves():
    board = Board()
    ts = hosts(6, board)
    out = run(ts, policy(ts, 3, max_unavailable=2))
    assert out.status == "deployed"
    assert [b.waves for b in out.batches] == [[["h1", "h2"], ["h3"]], [["h4", "h5"], ["h6"]]]
    assert board.peak == 2


def test_pause_between_batches_not_before_the_first_nor_after_the_last():
    board = Board()
    ts = hosts(3, board)
    slept = []
    run(ts, policy(ts, 1, pause_s=7.5), sleep=slept.append)
    assert slept == [7.5, 7.5]


def test_rollback_restores_every_batch_already_changed():
    board = Board()
    ts = hosts(6, board, h4={"fail": True})
    out = run(ts, policy(ts, 2))
    assert out.status == "rolled_back"
    assert "h4: web: container unhealthy" in out.error
    for t in ts:
        assert t.running == {"web": OLD}, t.name
    assert [t.calls for t in ts[:2]] == [["prepare", "commit", "restore"]] * 2   # batch 1 restored
    assert ts[2].calls == ["prepare", "discard"] and ts[3].calls == ["prepare", "discard"]  # batch 2 discarded
    assert ts[4].calls == ts[5].calls == []                                        # batch 3 never touched
    statuses = {t.target: t.status for t in out.targets}
    assert statuses == {"h1": "rolled_back", "h2": "rolled_back", "h3": "rolled_back", "h4": "failed",
                        "h5": "cancelled", "h6": "cancelled"}
    assert [b.status for b in out.batches] == ["deployed", "failed", "not_started"]
    assert board.down == set()


def test_rollback_names_targets_it_could_not_restore():
    board = Board()
    ts = hosts(4, board, h1={"restore_fails": True}, h3={"fail": True})
    out = run(ts, policy(ts, 2))
    assert out.status == "failed" and out.not_restored == ["h1"]
    assert "could not restore h1" in out.error
    assert ts[1].running == {"web": OLD}


def test_pause_keeps_finished_batches_and_records_what_is_left():
    board = Board()
    ts = hosts(6, board, h3={"fail": True})
    out = run(ts, policy(ts, 2, on_failure="pause"))
    assert out.status == "paused" and not out.ok
    assert [t.running["web"] for t in ts] == [NEW, NEW, OLD, OLD, OLD, OLD]
    assert "restore" not in ts[0].calls
    assert out.pending == ["h3", "h4", "h5", "h6"]      # the failed batch (restored) and the batches not reached
    assert {t.target: t.status for t in out.targets}["h5"] == "pending"
    assert [b.status for b in out.batches] == ["deployed", "failed", "not_started"]


def test_continue_skips_the_failed_target_and_deploys_the_rest():
    board = Board()
    ts = hosts(6, board, h3={"fail": True})
    out = run(ts, policy(ts, 2, on_failure="continue"))
    assert out.status == "deployed" and out.skipped == ["h3"]
    assert "skipped after failing: h3" in out.error
    assert [t.running["web"] for t in ts] == [NEW, NEW, OLD, NEW, NEW, NEW]
    # h4 shared the failed wave: put back (or never started) with it, then deployed on its own
    assert ts[3].calls[-2:] == ["prepare", "commit"] and ts[3].calls.count("commit") == 1
    assert out.batches[1].waves == [["h3", "h4"], ["h4"]] and out.batches[1].status == "skipped-some"
    assert {t.target: t.status for t in out.targets}["h3"] == "skipped"


def test_continue_with_every_target_failing_is_a_failure():
    board = Board()
    ts = hosts(2, board, h1={"fail": True}, h2={"fail": True})
    out = run(ts, policy(ts, 1, on_failure="continue"))
    assert out.status == "failed" and sorted(out.skipped) == ["h1", "h2"]


def test_targets_left_unrestored_count_against_max_unavailable():
    """max_unavailable 2, one host broken for good: the next batches change one host at a time,
    and when a second breaks there is no room left: the rollout stops instead of exceeding it."""
    board = Board()
    ts = hosts(7, board, h1={"broken": True}, h4={"broken": True})
    out = run(ts, policy(ts, 2, on_failure="continue"))
    assert out.batches[0].waves == [["h1", "h2"], ["h2"]]
    assert out.batches[1].waves == [["h3"], ["h4"]]
    assert out.status == "paused" and "max_unavailable 2 leaves no room" in out.error
    assert sorted(out.not_restored) == ["h1", "h4"]
    assert board.peak <= 2
    assert out.pending == ["h5", "h6", "h7"]
    assert all(t.calls == [] for t in ts[4:])


@pytest.mark.parametrize("size,max_unavailable", [(1, 1), (2, 2), (4, 2), (3, 1), (5, 5)])
def test_never_more_than_max_unavailable_at_once(size, max_unavailable):
    board = Board()
    ts = hosts(10, board)
    out = run(ts, policy(ts, size, max_unavailable=max_unavailable))
    assert out.status == "deployed"
    assert board.peak == max_unavailable


def test_only_batches_runs_a_subset_and_leaves_the_others_alone():
    board = Board()
    ts = hosts(4, board)
    out = run(ts, policy(ts, 2), only_batches=[1])
    assert [t.running["web"] for t in ts] == [OLD, OLD, NEW, NEW]
    assert [b.status for b in out.batches] == ["pending", "deployed"]


def test_policy_checks_its_batches():
    with pytest.raises(ValueError, match="each target once"):
        RollingPolicy(batches=(("a",), ("a",)), max_unavailable=1)
    with pytest.raises(ValueError, match="max_unavailable"):
        RollingPolicy(batches=(("a",),), max_unavailable=0)
    board = Board()
    ts = hosts(2, board)
    with pytest.raises(ValueError, match="the batches name"):
        run_rolling([(ts[0], plan("h1"))], policy(ts, 1))
