"""The generic two-phase engine, with tiny in-memory targets (the engine is target-type agnostic;
the real-dockerd tests are in tests/integration/test_docker_target.py)."""

from __future__ import annotations

import threading
import time

import pytest

from stella_operators.deploy import run_deployment
from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import (
    ComponentSpec,
    DeployError,
    PreparedChange,
    RunningComponent,
    TargetFacts,
    TargetPlan,
    VersionSticker,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


class FakeTarget:
    """A host in memory: `running` is component -> digest; prepare stages, commit applies."""

    def __init__(self, name: str, running: dict[str, str] | None = None, *, fail: str | None = None,
                 fail_plain: bool = False, block: threading.Event | None = None, commit_fails: bool = False,
                 lie_after_commit: str | None = None, facts_fail: bool = False,
                 barrier: threading.Barrier | None = None, restore_fails: bool = False):
        self.name = name
        self.running = dict(running or {})
        self.fail, self.fail_plain, self.block = fail, fail_plain, block
        self.commit_fails, self.lie_after_commit, self.facts_fail = commit_fails, lie_after_commit, facts_fail
        self.barrier = barrier
        self.restore_fails = restore_fails
        self.barrier_timeout_s = 5.0
        self.calls: list[str] = []
        self.discarded: list[PreparedChange] = []
        self.committed = False
        self.prepare_returned = threading.Event()
        self.discard_done = threading.Event()

    def facts(self, app: str) -> TargetFacts:
        if self.facts_fail:
            raise ConnectionError("engine unreachable")
        comps = {c: RunningComponent(component=c, digest=d, workload_id=f"{c}-{d[7:11]}", workload_name=c)
                 for c, d in self.running.items()}
        if self.committed and self.lie_after_commit:
            comps["web"].digest = self.lie_after_commit
        return TargetFacts(target=self.name, app=app, components=comps, sticker=None)

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        self.calls.append("prepare")
        if self.barrier is not None:
            self.barrier.wait(timeout=self.barrier_timeout_s)
        prepared = PreparedChange(target=self.name)
        try:
            if self.block is not None:
                self.block.wait(timeout=10)
            for spec in plan.components:
                c = spec.component
                if self.running.get(c.name) == c.digest:
                    prepared.unchanged.append(c.name)
                    continue
                prepared.started[c.name] = f"new-{c.name}"
                prepared.timings_ms[f"{c.name}.pull"] = 5
                prepared.log.append(f"{c.name}: started new-{c.name} (env DB_PASSWORD=<not logged>)")
                if c.name in self.running:
                    prepared.to_retire[c.name] = [f"old-{c.name}"]
                if self.fail == c.name:
                    if self.fail_plain:
                        raise OSError("connection reset")
                    raise DeployError(self.name, f"{c.name}: container unhealthy", prepared=prepared)
            self._staged = {s.component.name: s.component.digest for s in plan.components}
            return prepared
        finally:
            self.prepare_returned.set()

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.calls.append("commit")
        if self.commit_fails:
            raise DeployError(self.name, "cannot remove old container")
        self.running.update(self._staged)
        self.committed = True

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.calls.append("discard")
        self.discarded.append(prepared)
        prepared.log.append("discarded")
        self.discard_done.set()

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        self.calls.append("restore")
        if self.restore_fails:
            raise DeployError(self.name, "old container is gone")
        for spec in plan.components:
            self.running.pop(spec.component.name, None)
        self.running.update({c: d for c, d in previous.items() if d is not None})
        self.committed = False

    def finalize(self, plan: TargetPlan) -> None:
        self.calls.append("finalize")


def plan(target: str, digests: dict[str, str], deployment: str = "dep-1") -> TargetPlan:
    comps = [ComponentDigest(name=n, repository="reg.local/shop/" + n, digest=d) for n, d in sorted(digests.items())]
    sticker = VersionSticker(app="shop", release_id="r1", release_name="1.0", content_hash=D3, components=comps,
                             deployment_id=deployment, promotion_id="p1", environment="prod", target=target,
                             strategy="all_at_once", deployed_at="2026-01-01T00:00:00Z")
    return TargetPlan(app="shop", environment="prod", target=target, deployment_id=deployment,
                      components=tuple(ComponentSpec(component=c) for c in comps), sticker=sticker)


def pairs(*targets: FakeTarget, digests: dict[str, str] | None = None):
    return [(t, plan(t.name, digests or {"web": D2})) for t in targets]


def test_all_prepare_then_all_commit():
    a, b = FakeTarget("a", {"web": D1}), FakeTarget("b", {"web": D1})
    out = run_deployment(pairs(a, b))
    assert out.status == "deployed" and out.ok and out.error is None
    assert out.deployment_id == "dep-1"
    for t in (a, b):
        assert t.calls == ["prepare", "commit", "finalize"]
        to = out.target(t.name)
        assert to.status == "deployed"
        assert to.digests_before == {"web": D1} and to.digests_after == {"web": D2}
        assert to.timings_ms["web.pull"] == 5 and "prepare" in to.timings_ms and "commit" in to.timings_ms
        assert any("started new-web" in line for line in to.log)
    assert out.previous_digests() == {"a": {"web": D1}, "b": {"web": D1}}


def test_same_digests_are_unchanged_and_not_committed():
    a, b = FakeTarget("a", {"web": D2}), FakeTarget("b", {"web": D2})
    out = run_deployment(pairs(a, b))
    assert out.status == "unchanged"
    assert [t.status for t in out.targets] == ["unchanged", "unchanged"]
    assert a.calls == b.calls == ["prepare"]


def test_mixed_unchanged_and_changed_targets_is_deployed():
    a, b = FakeTarget("a", {"web": D2}), FakeTarget("b", {"web": D1})
    out = run_deployment(pairs(a, b))
    assert out.status == "deployed"
    assert out.target("a").status == "unchanged" and out.target("b").status == "deployed"
    assert a.calls == ["prepare"] and b.calls == ["prepare", "commit", "finalize"]


def test_one_failure_discards_everywhere_including_the_partial_prepare():
    a = FakeTarget("a", {"web": D1, "api": D1})
    b = FakeTarget("b", {"web": D1, "api": D1}, fail="web")  # api prepared first, then web fails
    c = FakeTarget("c", {"web": D1, "api": D1})
    out = run_deployment(pairs(a, b, c, digests={"web": D2, "api": D2}), max_parallel=3)
    assert out.status == "rolled_back" and not out.ok
    assert "b: web: container unhealthy" in out.error
    assert out.target("b").status == "failed" and "unhealthy" in out.target("b").error
    assert out.target("a").status == out.target("c").status == "rolled_back"
    for t in (a, b, c):
        assert "commit" not in t.calls
        assert t.calls[-1] == "discard"
        assert t.running == {"web": D1, "api": D1}
    # the failed target's partial work (api and web started) is what was discarded
    assert b.discarded[0].started == {"api": "new-api", "web": "new-web"}
    to = out.target("b")
    assert to.digests_after == to.digests_before == {"api": D1, "web": D1}
    assert "discarded" in to.log


def test_plain_exception_without_prepared_is_a_failure_too():
    a, b = FakeTarget("a", {"web": D1}), FakeTarget("b", {"web": D1}, fail="web", fail_plain=True)
    out = run_deployment(pairs(a, b))
    assert out.status == "rolled_back"
    assert "connection reset" in out.target("b").error
    assert a.calls == ["prepare", "discard"]
    assert b.calls == ["prepare"]  # nothing it returned to discard


def test_failure_cancels_prepares_not_started_yet():
    a = FakeTarget("a", {"web": D1}, fail="web")
    b, c = FakeTarget("b", {"web": D1}), FakeTarget("c", {"web": D1})
    out = run_deployment(pairs(a, b, c), max_parallel=1)
    assert out.status == "rolled_back"
    assert out.target("b").status == out.target("c").status == "cancelled"
    assert b.calls == c.calls == []


def test_prepares_run_in_parallel_up_to_max_parallel():
    barrier = threading.Barrier(3)
    ts = [FakeTarget(n, {"web": D1}, barrier=barrier) for n in "abc"]
    out = run_deployment(pairs(*ts), max_parallel=3)
    assert out.status == "deployed"  # a barrier of 3 only opens when all three prepare at once
    barrier2 = threading.Barrier(2)
    ts = [FakeTarget(n, {"web": D1}, barrier=barrier2) for n in "ab"]
    for t in ts:
        t.barrier_timeout_s = 0.3
    out = run_deployment(pairs(*ts), max_parallel=1)  # serial: the barrier times out
    assert out.status == "rolled_back"


def test_timeout_rolls_back_and_discards_the_late_prepare_when_it_returns():
    gate = threading.Event()
    slow = FakeTarget("slow", {"web": D1}, block=gate)
    fast = FakeTarget("fast", {"web": D1})
    t0 = time.monotonic()
    out = run_deployment(pairs(fast, slow), timeout_s=0.5)
    assert time.monotonic() - t0 < 3
    assert out.status == "rolled_back"
    assert "slow: prepare did not finish within" in out.error
    assert out.target("slow").status == "failed"
    assert out.target("fast").status == "rolled_back" and fast.calls == ["prepare", "discard"]
    assert "commit" not in slow.calls
    gate.set()
    assert slow.discard_done.wait(5), "the late prepare must be discarded once it returns"
    assert slow.running == {"web": D1}


def test_post_commit_verification_failure_restores_every_changed_target():
    a = FakeTarget("a", {"web": D1})
    b = FakeTarget("b", {"web": D1}, lie_after_commit=D3)
    out = run_deployment(pairs(a, b))
    assert out.status == "rolled_back"
    assert f"target b runs {D3} for component web, planned {D2}" in out.error
    assert out.target("a").status == "rolled_back" and out.target("b").status == "failed"
    for t in (a, b):
        assert t.calls == ["prepare", "commit", "restore"]
        assert t.running == {"web": D1}
        assert out.target(t.name).digests_after == {"web": D1}


def test_missing_component_after_commit_is_restored():
    a = FakeTarget("a", {})
    a.commit = lambda plan, prepared: a.calls.append("commit")  # commits nothing
    out = run_deployment(pairs(a))
    assert out.status == "rolled_back"
    assert f"target a runs nothing for component web, planned {D2}" in out.error
    assert a.calls == ["prepare", "commit", "restore"] and a.running == {}


def test_commit_failure_on_the_second_host_restores_the_first_too():
    a, b = FakeTarget("a", {"web": D1}), FakeTarget("b", {"web": D1}, commit_fails=True)
    out = run_deployment(pairs(a, b))
    assert out.status == "rolled_back", out.error
    assert "b: commit failed" in out.error
    assert out.target("b").status == "failed" and out.target("a").status == "rolled_back"
    assert a.calls == ["prepare", "commit", "restore"] and b.calls == ["prepare", "commit", "restore"]
    assert a.running == b.running == {"web": D1}
    assert out.not_restored == []


def test_a_host_that_cannot_be_restored_is_named_and_the_deployment_failed():
    a = FakeTarget("a", {"web": D1}, restore_fails=True)
    b = FakeTarget("b", {"web": D1}, commit_fails=True)
    out = run_deployment(pairs(a, b))
    assert out.status == "failed"
    assert out.not_restored == ["a"]
    assert "could not restore a: a: old container is gone" in out.error
    assert b.running == {"web": D1}
    assert out.target("a").status == "failed"


def test_finalize_false_keeps_the_old_workloads():
    a = FakeTarget("a", {"web": D1})
    out = run_deployment(pairs(a), finalize=False)
    assert out.status == "deployed" and a.calls == ["prepare", "commit"]


def test_unreadable_facts_before_fails_closed():
    a, b = FakeTarget("a", {"web": D1}), FakeTarget("b", {"web": D1}, facts_fail=True)
    out = run_deployment(pairs(a, b))
    assert out.status == "rolled_back"
    assert "b: cannot read facts before deploying" in out.error
    assert b.calls == [] and a.calls == ["prepare", "discard"]


def test_failed_discard_makes_the_deployment_failed():
    a, b = FakeTarget("a", {"web": D1}), FakeTarget("b", {"web": D1}, fail="web")

    def broken_discard(plan, prepared):
        raise RuntimeError("engine gone")

    a.discard = broken_discard
    out = run_deployment(pairs(a, b))
    assert out.status == "failed"
    assert "rollback incomplete" in out.error and "a: discard failed: engine gone" in out.error


def test_arguments_are_validated():
    with pytest.raises(ValueError):
        run_deployment([])
    a = FakeTarget("a")
    with pytest.raises(ValueError):
        run_deployment([(a, plan("a", {"web": D1})), (a, plan("a", {"web": D1}))])
    with pytest.raises(ValueError):
        run_deployment(pairs(a), max_parallel=0)
