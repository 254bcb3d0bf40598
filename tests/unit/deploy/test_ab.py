"""A/B stages over in-memory workers: B starts before A stops, the health threshold is read all
through the wait, and a failure brings A back before B goes -- the fleet's capacity is sampled at
every change a worker makes."""

from __future__ import annotations

import threading

import pytest

from stella_operators.deploy.ab import run_ab
from stella_operators.deploy.ab_plan import plan_ab
from stella_operators.targets.contract import DeployError, PreparedChange, RunningComponent, TargetFacts, TargetPlan
from tests.unit.deploy.memory import NEW, OLD, plan


class Fleet:
    """Records, after every change, the share of the fleet at work: running A + healthy B."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.workers: dict[str, Worker] = {}
        self.samples: list[float] = []
        self.events: list[str] = []

    def changed(self, event: str) -> None:
        with self.lock:
            self.events.append(event)
            a = [w for w in self.workers.values() if w.group == "a"]
            b = [w for w in self.workers.values() if w.group == "b"]
            self.samples.append(100 * (sum(w.working() for w in a) / len(a) + sum(w.working() for w in b) / len(b)))


class Worker:
    def __init__(self, fleet: Fleet, name: str, group: str, *, running: str | None = None,
                 sick_after_readings: int | None = None, never_healthy: bool = False, cannot_park: bool = False):
        self.fleet, self.name, self.group = fleet, name, group
        self.running = {"web": running} if running else {}
        self.parked: dict[str, str] = {}
        self.readings = 0
        self.sick_after_readings = sick_after_readings
        self.never_healthy, self.cannot_park = never_healthy, cannot_park
        fleet.workers[name] = self

    def healthy(self) -> bool:
        if self.sick_after_readings is not None and self.running.get("web") == NEW:
            return self.readings <= self.sick_after_readings
        return True

    def working(self) -> bool:
        return bool(self.running) and self.healthy()

    def facts(self, app: str) -> TargetFacts:
        if self.running.get("web") == NEW:
            self.readings += 1
        comps = {c: RunningComponent(component=c, digest=d, workload_id=c, workload_name=c, healthy=self.healthy())
                 for c, d in self.running.items()}
        return TargetFacts(target=self.name, app=app, components=comps, sticker=None)

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        if self.never_healthy:
            raise DeployError(self.name, "web: container unhealthy", prepared=PreparedChange(self.name))
        return PreparedChange(target=self.name, started={"web": "new"})

    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self.running = {"web": NEW}
        self.fleet.changed(f"start {self.name}")

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        pass

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        self.running = {c: d for c, d in previous.items() if d}
        self.parked = {}
        self.fleet.changed(f"restore {self.name}")

    def finalize(self, plan: TargetPlan) -> None:
        pass

    def park(self, plan: TargetPlan) -> None:
        if self.cannot_park:
            raise DeployError(self.name, "cannot stop the container")
        self.parked, self.running = self.running, {}
        self.fleet.changed(f"park {self.name}")


def lab(n: int = 4, **special):
    fleet = Fleet()
    a = [Worker(fleet, f"a{i}", "a", running=OLD, **special.get(f"a{i}", {})) for i in range(1, n + 1)]
    b = [Worker(fleet, f"b{i}", "b", **special.get(f"b{i}", {})) for i in range(1, n + 1)]
    return fleet, a, b


def run(fleet, a, b, stages=(25, 50, 100), thresholds=None, *, wait_s=3.0, only=None, **kw):
    p = plan_ab([w.name for w in a], [w.name for w in b], list(stages), thresholds or [100] * len(stages),
                group_a="a", group_b="b", wait_s=wait_s)
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    previous = {w.name: dict(w.running) for w in (*a, *b)}
    return run_ab(p, [(w, plan(w.name)) for w in (*a, *b)], previous, stages=only, poll_s=1.0, sleep=sleep,
                  clock=lambda: now[0], **kw)


def test_a_healthy_rollout_moves_the_fleet_stage_by_stage_and_never_dips_under_100_percent():
    fleet, a, b = lab()
    started, ended = [], []
    out = run(fleet, a, b, on_stage_start=lambda s: started.append((s.index, fleet.events[:])),
              on_stage_end=lambda r: ended.append((r.index, r.status, r.readings)))
    assert out.status == "deployed" and out.group == "b" and out.previous_group == "a"
    assert [w.running for w in b] == [{"web": NEW}] * 4
    assert [w.running for w in a] == [{}] * 4 and [w.parked for w in a] == [{"web": OLD}] * 4
    assert fleet.events == ["start b1", "park a1", "start b2", "park a2", "start b3", "start b4", "park a3",
                            "park a4"]
    # each stage is announced before it touches anything; the wait reads health every second + at its end
    assert [(k, len(ev)) for k, ev in started] == [(0, 0), (1, 2), (2, 4)]
    assert ended == [(0, "done", 4), (1, "done", 4), (2, "done", 4)]
    assert min(fleet.samples) >= 100
    statuses = {t.target: t.status for t in out.targets}
    assert statuses == {**{w.name: "deployed" for w in b}, **{w.name: "stopped" for w in a}}


def test_one_stage_per_call_as_the_dag_runs_it():
    fleet, a, b = lab(2)
    for k in range(2):
        out = run(fleet, a, b, stages=(50, 100), only=[k])
        assert out.status == "deployed"
        assert [t.target for t in out.targets] == [f"b{k + 1}", f"a{k + 1}"]
    assert [w.running for w in b] == [{"web": NEW}] * 2 and [w.running for w in a] == [{}] * 2


def test_b_falling_under_the_threshold_during_the_wait_fails_the_stage_before_a_stops_and_rolls_back():
    fleet, a, b = lab(b1={"sick_after_readings": 2})
    out = run(fleet, a, b, wait_s=10)
    assert out.status == "rolled_back"
    assert out.error.startswith("stage 1 of 3 (25 %): 0 % of the started targets healthy, threshold 100 % "
                                "(b1: web unhealthy)")
    assert out.stages[0].status == "failed" and out.stages[0].readings == 2   # failed fast, not after 10 s
    assert "park a1" not in fleet.events                                      # A's share never stopped
    assert [w.running for w in a] == [{"web": OLD}] * 4 and [w.running for w in b] == [{}] * 4
    assert fleet.events[-1] == "restore b1"


def test_a_threshold_under_100_lets_a_sick_minority_through_and_says_so():
    fleet, a, b = lab(b2={"sick_after_readings": 0})
    out = run(fleet, a, b, stages=(50, 100), thresholds=[50, 75])
    assert out.status == "deployed"
    assert out.stages[0].healthy_share == 50 and out.stages[0].healthy == {"b1": None, "b2": "web unhealthy"}
    assert out.stages[1].healthy_share == 75
    # the promise of the last stage: (100 - 100) + 100 * 75 % = 75 %
    assert min(fleet.samples) >= 75


def test_a_later_stage_failing_brings_every_a_back_before_any_b_goes():
    fleet, a, b = lab(b3={"never_healthy": True})
    out = run(fleet, a, b)
    assert out.status == "rolled_back" and "stage 3 of 3" in out.error and "b3: web: container unhealthy" in out.error
    assert [w.running for w in a] == [{"web": OLD}] * 4 and [w.running for w in b] == [{}] * 4
    restores = [e for e in fleet.events if e.startswith("restore")]
    assert restores[:2] == ["restore a1", "restore a2"]       # A first (capacity), then B
    assert sorted(restores[2:]) == ["restore b1", "restore b2", "restore b3", "restore b4"]
    assert min(fleet.samples) >= 100
    assert {t.target: t.status for t in out.targets} == {"a1": "rolled_back", "a2": "rolled_back",
                                                         "b1": "rolled_back", "b2": "rolled_back",
                                                         "b3": "rolled_back", "b4": "rolled_back"}


def test_a_worker_that_cannot_be_stopped_fails_the_stage_and_everything_comes_back():
    fleet, a, b = lab(2, a1={"cannot_park": True})
    out = run(fleet, a, b, stages=(50, 100))
    assert out.status == "rolled_back" and "stopping a1 on a failed: a1: a1: cannot stop the container" in out.error
    assert [w.running for w in a] == [{"web": OLD}] * 2 and [w.running for w in b] == [{}] * 2


def test_a_target_without_park_is_named():
    fleet, a, b = lab(1)

    class NoPark:
        name = "a1"

        def __getattr__(self, item):
            if item == "park":
                raise AttributeError(item)
            return getattr(a[0], item)

    p = plan_ab(["a1"], ["b1"], [100], [100], group_a="a", group_b="b")
    out = run_ab(p, [(NoPark(), plan("a1")), (b[0], plan("b1"))], {"a1": {"web": OLD}, "b1": {}},
                 sleep=lambda s: None)
    assert out.status == "rolled_back" and "cannot stop the app's workloads and keep them (no park)" in out.error
    assert b[0].running == {} and a[0].running == {"web": OLD}


@pytest.mark.parametrize("wait_s", [0.0])
def test_no_wait_still_reads_health_once(wait_s):
    fleet, a, b = lab(1)
    out = run(fleet, a, b, stages=(100,), wait_s=wait_s)
    assert out.status == "deployed" and out.stages[0].readings == 1
