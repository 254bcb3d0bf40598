"""Approval-to-deploy latency against Airflow's own ApprovalOperator, and promotions waiting at scale.

One real Airflow deployment (devstack/airflow_stack.py: api-server, scheduler with LocalExecutor,
triggerer, dag-processor as separate processes, parallelism 4; SQLite metadata DB, or PostgreSQL
with --metadata-db postgres) serves both sides from one dags folder:

- stella: the generated `stella_promote__bench__prod` (request -> gates -> approval -> deploy ->
  verify). `approval` is our sensor, parked in `awaiting_input`; bob approves with
  `POST /stella/api/v1/promotions/{id}/approvals`, which settles the promotion and ends the parked
  task with the ledger's verdict. The Docker target's connection is not defined,
  so the deploy task fails right after it starts: we measure only until it starts.
- baseline: `benchmarks/dags/baseline_approval.py`, Airflow's `ApprovalOperator` (parks the task
  in `awaiting_input`, no triggerer) -> a trivial `deploy` task that really runs in a worker; bob
  answers with `PATCH /api/v2/.../taskInstances/approval/-1/hitlDetails {"chosen_options": ["Approve"]}`.

Latency = start_date of the `deploy` task instance (REST API) - the wall-clock time just before
the approving call (same machine); it is split at the approval task's end and the deploy task's
`queued_when`. Runs alternate stella / baseline, in two modes (the wait begins when the approval
task is seen parked in `awaiting_input`, polled every 0.05 s):
- steady: answered 12-14 s after the wait began (MIN_WAIT_S + 4..6 s; a random phase, as an
  approver who reads the request first would);
- early: answered 1 s after the wait began (Airflow 3.3 can fail a task resumed that soon).

Waiting at scale: `--waiting` promotion runs triggered back to back; once all their approval tasks
are deferred: no task instance may be `running`, a probe DAG (`benchmarks/dags/probe.py`) must
finish (worker slots are free); the triggerer's memory and CPU are reported; then 10 are approved.

Usage: python benchmarks/approval_latency.py [--repeat 5] [--skip-early] [--waiting 200]
           [--skip-waiting] [--metadata-db sqlite|postgres] [--keep]
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack.waiting import wait_until

USERS = {"admin": "admin", "alice": "op", "bob": "op"}
APP, ENV = "bench", "prod"
STELLA_DAG = f"stella_promote__{APP}__{ENV}"
BASE_DAG = "bench_baseline_approval"
PROBE_DAG = "bench_probe"
RELEASE = "bench-1.0.0"
POLL_INTERVAL_S = 2.0          # ApprovalSensor's default, which the generated DAG uses
SETTLE_S = 1.0                 # "early" answers: this long after the approval task is waiting
try:                           # the trigger's first ledger read comes this long after it starts
    from stella_operators.triggers.ledger_poll import MIN_WAIT_S
except ImportError:
    MIN_WAIT_S = 0.0


def estate_yaml() -> str:
    return textwrap.dedent("""
        registries: [{host: "bench.local:5000", scheme: http}]
        approver_groups:
          - {name: approvers, users: [bob]}
        apps:
          - name: bench
            components:
              - {name: web, repository: bench.local:5000/bench/web}
        environments:
          - name: prod
            requires: []
            approvals: {required: 1, groups: [approvers]}
            max_active_promotions: 250
            targets: [{name: bench-prod-1, type: docker, connection: stella_bench_undefined_engine}]
    """)


# ---------------------------------------------------------------------------------------------
# small helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def ts(iso: str | None) -> float | None:
    return datetime.fromisoformat(iso).timestamp() if iso else None


class Api:
    def __init__(self, stack):
        self.logs = stack.home / "logs"
        self.client = httpx.Client(base_url=stack.url, timeout=60)
        self.tokens = {}
        for user, password in stack.passwords.items():
            r = self.client.post("/auth/token", json={"username": user, "password": password})
            r.raise_for_status()
            self.tokens[user] = r.json()["access_token"]

    def call(self, method: str, url: str, user: str = "admin", **kw) -> httpx.Response:
        return self.client.request(method, url, headers={"Authorization": f"Bearer {self.tokens[user]}"}, **kw)

    def trigger(self, dag_id: str, user: str, conf: dict | None = None) -> str:
        r = self.call("POST", f"/api/v2/dags/{dag_id}/dagRuns", user, json={"logical_date": None, "conf": conf or {}})
        if r.status_code != 200:
            raise RuntimeError(f"trigger {dag_id}: {r.status_code} {r.text}")
        return r.json()["dag_run_id"]

    def ti(self, dag_id: str, run_id: str, task_id: str) -> dict:
        r = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")
        return r.json() if r.status_code == 200 else {}

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        return self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json().get("state")

    def count_tis(self, dag_id: str = "~", **params) -> int:
        r = self.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/~/taskInstances", params={**params, "limit": 1})
        r.raise_for_status()
        return r.json()["total_entries"]


# ---------------------------------------------------------------------------------------------
# process figures from /proc


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def rss_mb(pids: list[int]) -> float:
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])     # utime, stime
        except OSError:
            pass
    return total / tick


def cpu_share(pids: list[int], window_s: float) -> float:
    """CPU used by `pids` over `window_s`, in percent of one core."""
    c0, t0 = cpu_seconds(pids), time.monotonic()
    time.sleep(window_s)
    return 100 * (cpu_seconds(pids) - c0) / (time.monotonic() - t0)


# ---------------------------------------------------------------------------------------------
# setup


def seed_release(estate_path: Path, ledger_url: str, stella_home: Path):
    """A sealed release in the ledger without a registry (the digest is made up; deploy is not measured)."""
    from stella_operators.estate.loader import load_estate
    from stella_operators.evidence.keys import load_or_create_dev_key
    from stella_operators.ledger import Ledger
    from stella_operators.release.model import ComponentDigest
    from stella_operators.release.service import cut_release, record_release

    digest = "sha256:" + hashlib.sha256(b"stella approval latency benchmark").hexdigest()
    estate = load_estate(estate_path)
    ledger = Ledger.open(ledger_url)
    key = load_or_create_dev_key(stella_home / "keys" / "dev-ed25519.pem")   # the key the tasks will use
    release = cut_release(estate, app=APP, name=RELEASE, refs={"web": digest}, created_by="release-bot",
                          resolve=lambda comp, repo, ref: ComponentDigest(name=comp.name, repository=repo,
                                                                          digest=digest))
    record_release(ledger, key, release)
    return ledger


# ---------------------------------------------------------------------------------------------
# latency


@dataclass
class Sample:
    side: str                 # stella | baseline
    mode: str                 # steady | early
    run_id: str
    delay_s: float            # approval task seen waiting -> approving call
    latency_s: float          # deploy start - t0
    call_s: float             # duration of the approving HTTP call
    approval_done_s: float    # approval task end - t0
    queued_s: float | None = None  # deploy task queued (queued_when) - t0
    tries: list[str] | None = None  # the approval task's tries, by state (one "success" expected)
    fired_s: float | None = None   # stella: the trigger's event (from its log) - t0


def wait_deploy_start(api: Api, dag_id: str, run_id: str, timeout_s: float = 120) -> float:
    return wait_until(lambda: ts(api.ti(dag_id, run_id, "deploy").get("start_date")), timeout_s,
                      f"{dag_id} {run_id} deploy to start", every=0.1)


def finish(api: Api, dag_id: str, run_id: str, timeout_s: float = 180) -> str:
    return wait_until(lambda: (st := api.run_state(dag_id, run_id)) in ("success", "failed") and st,
                      timeout_s, f"{dag_id} {run_id} to finish", every=0.5)


def trigger_fired_at(logs: Path, dag_id: str, run_id: str) -> float | None:
    """When the approval trigger fired its event, from the triggerer's task log (JSON lines)."""
    folder = logs / f"dag_id={dag_id}" / f"run_id={run_id}" / "task_id=approval"
    for f in sorted(folder.glob("attempt=*.log.trigger.*.log")):
        for line in f.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == "Trigger fired event":
                return ts(rec["timestamp"])
    return None


WAITING = ("deferred", "awaiting_input")   # the sensor waits parked (3.3 HITL) or on its trigger


def waiting_count(api: Api) -> int:
    return sum(api.count_tis(STELLA_DAG, task_id="approval", state=st) for st in WAITING)


def stella_once(api: Api, ledger, mode: str, delay_s: float, i: int) -> Sample:
    run = api.trigger(STELLA_DAG, "alice", {"release": RELEASE, "reason": f"latency run {i}"})
    wait_until(lambda: api.ti(STELLA_DAG, run, "approval").get("state") in WAITING, 180,
               f"{run} approval waiting", every=0.05)
    promo = ledger.find_promotion_by_run(STELLA_DAG, run)
    time.sleep(delay_s)
    t0 = time.time()
    r = api.call("POST", f"/stella/api/v1/promotions/{promo.id}/approvals", "bob",
                 json={"decision": "approve", "comment": f"benchmark {i}"})
    call_s = time.time() - t0
    if r.status_code != 201 or r.json()["approvals"]["status"] != "approved":
        raise RuntimeError(f"stella approval refused: {r.status_code} {r.text}")
    start = wait_deploy_start(api, STELLA_DAG, run)
    approval_end = ts(api.ti(STELLA_DAG, run, "approval").get("end_date"))
    queued = ts(api.ti(STELLA_DAG, run, "deploy").get("queued_when"))
    finish(api, STELLA_DAG, run)       # the deploy fails (no Docker engine): expected
    fired = trigger_fired_at(api.logs, STELLA_DAG, run)
    return Sample("stella", mode, run, delay_s, start - t0, call_s, (approval_end or start) - t0,
                  queued - t0 if queued else None, approval_tries(api, STELLA_DAG, run),
                  fired - t0 if fired else None)


def baseline_once(api: Api, mode: str, delay_s: float, i: int) -> Sample:
    run = api.trigger(BASE_DAG, "alice")
    wait_until(lambda: api.ti(BASE_DAG, run, "approval").get("state") == "awaiting_input", 180,
               f"{run} approval awaiting_input", every=0.05)
    time.sleep(delay_s)
    t0 = time.time()
    r = api.call("PATCH", f"/api/v2/dags/{BASE_DAG}/dagRuns/{run}/taskInstances/approval/-1/hitlDetails", "bob",
                 json={"chosen_options": ["Approve"]})
    call_s = time.time() - t0
    if r.status_code != 200:
        raise RuntimeError(f"HITL answer refused: {r.status_code} {r.text}")
    start = wait_deploy_start(api, BASE_DAG, run)
    approval_end = ts(api.ti(BASE_DAG, run, "approval").get("end_date"))
    queued = ts(api.ti(BASE_DAG, run, "deploy").get("queued_when"))
    state = finish(api, BASE_DAG, run)
    if state != "success":
        raise RuntimeError(f"baseline run {run} ended {state}")
    return Sample("baseline", mode, run, delay_s, start - t0, call_s, (approval_end or start) - t0,
                  queued - t0 if queued else None, approval_tries(api, BASE_DAG, run))


def approval_tries(api: Api, dag_id: str, run_id: str) -> list[str]:
    r = api.call("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/approval/tries")
    return [t["state"] for t in r.json().get("task_instances", [])] if r.status_code == 200 else ["?"]


def show(i, s: Sample) -> None:
    fired = f"trigger fired +{s.fired_s:.2f} s, " if s.fired_s is not None else ""
    log(f"  #{i} {s.mode:6s} {s.side:8s} approved {s.delay_s:4.1f} s after waiting began: deploy started "
        f"+{s.latency_s:5.2f} s  ({fired}approval task done +{s.approval_done_s:.2f} s, deploy queued "
        f"+{s.queued_s if s.queued_s is not None else float('nan'):.2f} s, approval tries {s.tries}, "
        f"approving call {s.call_s * 1000:.0f} ms)")


def latency(api: Api, ledger, repeat: int, early: bool, rng: random.Random) -> dict:
    # steady: the answer comes after the trigger's start-up wait (MIN_WAIT_S) is over, at a random
    # phase of its poll cycle (what an approver who reads the request first sees); both sides get
    # the same delays. early: the answer comes SETTLE_S after the approval task started waiting.
    steady_base = MIN_WAIT_S + 4.0
    log(f"warm-up: one run of each side (not counted); steady delay {steady_base:.0f}-"
        f"{steady_base + POLL_INTERVAL_S:.0f} s, early delay {SETTLE_S:.0f} s")
    for s in (stella_once(api, ledger, "steady", steady_base, 0), baseline_once(api, "steady", steady_base, 0)):
        show("w", s)
    samples: list[Sample] = []
    for i in range(1, repeat + 1):
        d = steady_base + rng.uniform(0, POLL_INTERVAL_S)
        batch = [stella_once(api, ledger, "steady", d, i), baseline_once(api, "steady", d, i)]
        if early:
            batch += [stella_once(api, ledger, "early", SETTLE_S, i), baseline_once(api, "early", SETTLE_S, i)]
        for s in batch:
            show(i, s)
        samples += batch
    med = statistics.median
    res = {"samples": samples}
    for mode in ("steady", "early"):
        st = [s for s in samples if s.side == "stella" and s.mode == mode]
        bl = [s for s in samples if s.side == "baseline" and s.mode == mode]
        if not st or not bl:
            continue
        r = {"stella": [s.latency_s for s in st], "baseline": [s.latency_s for s in bl],
             "stella_median": med([s.latency_s for s in st]), "baseline_median": med([s.latency_s for s in bl]),
             "stella_done": med([s.approval_done_s for s in st]), "baseline_done": med([s.approval_done_s for s in bl]),
             "delay": med([s.delay_s for s in st]),
             "stella_bad": [s.tries for s in st if s.tries != ["success"]],
             "baseline_bad": [s.tries for s in bl if s.tries != ["success"]]}
        r["ratio"] = r["stella_median"] / r["baseline_median"]
        fired = [s for s in st if s.fired_s is not None]
        if fired:
            r["fired"] = med([s.fired_s for s in fired])
            r["after_fire"] = med([s.latency_s - s.fired_s for s in fired])
        res[mode] = r
    return res


# ---------------------------------------------------------------------------------------------
# waiting at scale


def waiting_at_scale(api: Api, stack, ledger, n: int, budget_s: float) -> dict:
    trig_pids = process_tree(stack.procs["triggerer"].pid)
    idle_cpu = cpu_share(trig_pids, 10)
    idle_rss = rss_mb(trig_pids)
    log(f"triggerer idle: {len(trig_pids)} process(es), RSS {idle_rss:.0f} MB, CPU {idle_cpu:.1f}% of a core")

    # One POST after the other: parallel POSTs make SQLite (Airflow's metadata DB here) answer
    # 500 "database is locked" after its 5 s busy timeout. A 500 rolls back: retry it.
    t_start = time.monotonic()
    runs, retries = [], 0
    for i in range(n):
        for attempt in range(5):
            try:
                runs.append(api.trigger(STELLA_DAG, "alice", {"release": RELEASE, "reason": f"waiting {i}"}))
                break
            except RuntimeError:
                retries += 1
                if attempt == 4:
                    raise
                time.sleep(1)
    t_triggered = time.monotonic() - t_start
    log(f"triggered {n} promotion runs in {t_triggered:.1f} s ({retries} POSTs retried after a 500)")

    deadline = t_start + budget_s
    deferred, last, peak_running = 0, 0.0, 0
    dead = None
    while time.monotonic() < deadline:
        dead = next((c for c, p in stack.procs.items() if p.poll() is not None), None)
        if dead:
            log(f"airflow {dead} exited ({stack.procs[dead].returncode}); its log ends:\n{stack.log_tail(dead, 12)}")
            break
        deferred = waiting_count(api)
        if deferred >= n:
            break
        if time.monotonic() - last >= 15:
            last = time.monotonic()
            counts = {s: api.count_tis(STELLA_DAG, state=s) for s in ("scheduled", "queued", "running", "failed")}
            peak_running = max(peak_running, counts["running"])
            log(f"  +{time.monotonic() - t_start:4.0f} s: {deferred}/{n} approvals deferred; stella TIs {counts}")
        time.sleep(1)
    all_deferred_s = time.monotonic() - t_start
    reached = deferred >= n
    log(f"{deferred}/{n} approval tasks deferred after {all_deferred_s:.0f} s"
        + ("" if reached else f" ({'airflow ' + dead + ' died' if dead else 'budget hit'})"))
    if dead:
        return {"n": n, "dead": dead, "deferred": deferred, "all_deferred_s": all_deferred_s}
    time.sleep(3)     # let the triggerer pick up the last ones

    running = api.count_tis(state="running")
    queued = api.count_tis(state="queued")
    deferred = waiting_count(api)
    failed = api.count_tis(STELLA_DAG, state="failed")
    awaiting = sum(1 for r in runs if (p := ledger.find_promotion_by_run(STELLA_DAG, r)) is not None
                   and p.status == "awaiting_approval")
    trig_pids = process_tree(stack.procs["triggerer"].pid)
    rss = rss_mb(trig_pids)
    busy_cpu = cpu_share(trig_pids, 20)
    log(f"TIs running {running}, queued {queued}, approval deferred {deferred}, stella failed {failed}; "
        f"ledger promotions awaiting approval {awaiting}; triggerer RSS {rss:.0f} MB, CPU {busy_cpu:.1f}% of a core")

    t_probe = time.time()
    probe = api.trigger(PROBE_DAG, "admin")
    try:
        probe_state = finish(api, PROBE_DAG, probe, timeout_s=300)
    except TimeoutError:
        probe_state = f"still {api.run_state(PROBE_DAG, probe)}"
    probe_s = time.time() - t_probe
    ping = api.ti(PROBE_DAG, probe, "ping")
    log(f"probe DAG {probe_state} {probe_s:.1f} s after its trigger (ping ran {ping.get('duration') or 0:.2f} s)")

    n_approve = min(10, n)
    chosen = runs[:n_approve]
    t_ap = time.time()
    for r in chosen:
        promo = ledger.find_promotion_by_run(STELLA_DAG, r)
        resp = api.call("POST", f"/stella/api/v1/promotions/{promo.id}/approvals", "bob",
                        json={"decision": "approve", "comment": "scale test"})
        if resp.status_code != 201:
            log(f"  approval of {promo.id} refused: {resp.status_code} {resp.text[:200]}")
    t_sent = time.time() - t_ap
    starts = [wait_deploy_start(api, STELLA_DAG, r, timeout_s=180) - t_ap for r in chosen]
    log(f"approved {n_approve} (calls took {t_sent:.1f} s): all their deploy tasks started within {max(starts):.1f} s "
        f"(median {statistics.median(starts):.1f} s)")
    # Where the time went: approval task ended (by the call) -> deploy queued (scheduler) -> running (a worker).
    split = []
    for r in chosen:
        ended = ts(api.ti(STELLA_DAG, r, "approval").get("end_date"))
        dep = api.ti(STELLA_DAG, r, "deploy")
        dep_queued, dep_started = ts(dep.get("queued_when")), ts(dep.get("start_date"))
        if ended and dep_queued and dep_started:
            split.append((ended - t_ap, dep_queued - ended, dep_started - dep_queued))
    if split:
        log("  per approved run: approval task ended +s / ended -> deploy queued s / queued -> running s: "
            + "; ".join(f"{a:.1f}/{b:.1f}/{c:.1f}" for a, b, c in split))
    still = waiting_count(api)
    fired = [f - t_ap for r in chosen if (f := trigger_fired_at(api.logs, STELLA_DAG, r)) is not None]
    blocked = (stack.home / "triggerer.log").read_text(errors="replace").count("async thread was blocked")
    log(f"their triggers fired within {max(fired, default=float('nan')):.1f} s of the first approving call; "
        f"triggerer 'async thread was blocked' warnings so far: {blocked}")
    return {"fired_max_s": max(fired, default=float("nan")), "blocked": blocked, "n": n, "deferred": deferred,
            "reached": reached, "all_deferred_s": all_deferred_s,
            "triggered_s": t_triggered, "retries": retries, "running": running, "queued": queued,
            "failed": failed, "awaiting": awaiting, "rss": rss, "idle_rss": idle_rss, "cpu": busy_cpu,
            "idle_cpu": idle_cpu, "procs": len(trig_pids), "probe_state": probe_state, "probe_s": probe_s,
            "approved": n_approve, "approved_max_s": max(starts), "approved_median_s": statistics.median(starts),
            "still": still, "peak_running": peak_running}


# ---------------------------------------------------------------------------------------------


def bench_stack_class():
    from devstack.airflow_stack import AirflowStack

    class BenchStack(AirflowStack):
        """devstack's stack, optionally on another metadata DB (devstack always uses SQLite)."""

        metadata_url: str | None = None

        def _environ(self) -> dict[str, str]:
            env = super()._environ()
            if self.metadata_url:
                env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.metadata_url
            return env

    return BenchStack


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="latency runs per side and mode (0: skip)")
    ap.add_argument("--skip-early", action="store_true", help="skip the answers given 1 s after waiting began")
    ap.add_argument("--waiting", type=int, default=200)
    ap.add_argument("--skip-waiting", action="store_true")
    ap.add_argument("--waiting-budget", type=float, default=None,
                    help="seconds to wait for all --waiting approval tasks to be deferred "
                         "(default 120 + 4 s per promotion: 3 worker tasks each come first)")
    ap.add_argument("--metadata-db", choices=("sqlite", "postgres"), default="sqlite",
                    help="Airflow's metadata DB: devstack's SQLite file, or a throwaway PostgreSQL server")
    ap.add_argument("--seed", type=int, default=7, help="seed of the random answer phase")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (logs, DBs)")
    ap.add_argument("--airflow-config", action="append", default=[], metavar="AIRFLOW__SECTION__KEY=VALUE",
                    help="extra Airflow setting for every component (repeatable), e.g. "
                         "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL=1")
    args = ap.parse_args()
    extra_config = dict(kv.split("=", 1) for kv in args.airflow_config)
    # As `pip install` does (PYTHONDONTWRITEBYTECODE may be set here): else every task start of the
    # stella DAGs would compile the package from this source tree, which no installed deployment does.
    compileall.compile_dir(str(ROOT / "stella_operators"), quiet=1)

    BenchStack = bench_stack_class()
    t_all = time.monotonic()
    load0 = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="stella-approval-bench-"))
    dags = work / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags" / "stella_estate.py", dags / "stella_estate.py")
    for f in ("baseline_approval.py", "probe.py"):
        shutil.copy(ROOT / "benchmarks" / "dags" / f, dags / f)
    estate = work / "estate.yaml"
    estate.write_text(estate_yaml())
    ledger_path, stella_home = work / "ledger.db", work / "stella"
    ledger = seed_release(estate, f"sqlite:///{ledger_path}", stella_home)
    env = {"STELLA_ESTATE": str(estate), "STELLA_HOME": str(stella_home),
           "AIRFLOW_CONN_STELLA_LEDGER": json.dumps({"conn_type": "sqlite", "host": str(ledger_path)}),
           **extra_config}
    pg = None
    stack = BenchStack(home=work / "airflow", dags_folder=dags, users=USERS, env=env, parallelism=4)
    if args.metadata_db == "postgres":
        from devstack.postgres import start_postgres

        pg = start_postgres("airflow_bench")
        stack.metadata_url = pg.url
    log(f"starting Airflow in {work} (LocalExecutor, parallelism 4, metadata DB {args.metadata_db}); "
        f"load average {load0:.2f}")
    try:
        stack.start()
    except BaseException:
        if pg:
            pg.stop()
        raise
    lat = scale = None
    try:
        api = Api(stack)
        for d in (STELLA_DAG, BASE_DAG, PROBE_DAG):
            stack.wait_for_dag(d, api.tokens["admin"])
        log(f"stack up, DAGs parsed ({time.monotonic() - t_all:.0f} s)")
        if args.repeat > 0:
            lat = latency(api, ledger, args.repeat, not args.skip_early, random.Random(args.seed))
        if not args.skip_waiting:
            scale = waiting_at_scale(api, stack, ledger, args.waiting,
                                     args.waiting_budget or 120 + 4 * args.waiting)
    finally:
        stack.stop()
        if pg:
            pg.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")

    print()
    print(f"== results: {os.cpu_count()} cores, LocalExecutor parallelism 4, {args.metadata_db} metadata DB, "
          f"SQLite ledger, {' '.join(args.airflow_config) or 'no extra Airflow settings'}, "
          f"stella poll {POLL_INTERVAL_S:g} s after a {MIN_WAIT_S:g} s start-up wait; "
          f"total {time.monotonic() - t_all:.0f} s, "
          f"load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} at end ==")
    if lat:
        fmt = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        for mode, what in (("steady", f"approved {MIN_WAIT_S + 4:.0f}-{MIN_WAIT_S + 4 + POLL_INTERVAL_S:.0f} s after "
                                      "the approval task began waiting"),
                           ("early", f"approved {SETTLE_S:.0f} s after the approval task began waiting")):
            r = lat.get(mode)
            if not r:
                continue
            print(f"[{mode}] {what}")
            print(f"  stella   approve->deploy start (s): {fmt(r['stella'])}")
            print(f"  baseline approve->deploy start (s): {fmt(r['baseline'])}")
            print(f"  approval->deploy latency ({mode}): stella median {r['stella_median']:.2f} s, Airflow "
                  f"ApprovalOperator median {r['baseline_median']:.2f} s, ratio stella/baseline {r['ratio']:.2f}x "
                  f"(median of {len(r['stella'])}, alternating)")
            print(f"  approval tasks not ending in one successful try: stella {r['stella_bad'] or 'none'}, "
                  f"baseline {r['baseline_bad'] or 'none'}")
            if "fired" in r:
                print(f"  stella split: approving call -> trigger event (ledger poll) median {r['fired']:.2f} s; "
                      f"trigger event -> deploy start median {r['after_fire']:.2f} s (triggerer -> scheduler -> "
                      f"worker resumes the sensor -> deploy); approval task done +{r['stella_done']:.2f} s "
                      f"(baseline +{r['baseline_done']:.2f} s)")
        print("  (stella's deploy task then fails by design: the benchmark's Docker target has no engine)")
    if scale and scale.get("dead"):
        print(f"{scale['n']} waiting promotions: FAILED, airflow {scale['dead']} died after "
              f"{scale['all_deferred_s']:.0f} s with {scale['deferred']} deferred (see its log)")
        sys.exit(1)
    if scale:
        s = scale
        ok = s["reached"] and s["running"] == 0 and s["deferred"] == s["n"] and s["probe_state"] == "success"
        print(f"{s['n']} waiting promotions: {s['deferred']} deferred ({s['all_deferred_s']:.0f} s from the first "
              f"trigger until all were), {s['running']} running, {s['queued']} queued, probe DAG "
              f"{s['probe_state']} in {s['probe_s']:.1f} s, triggerer RSS {s['rss']:.0f} MB "
              f"(idle {s['idle_rss']:.0f} MB; {s['procs']} processes)")
        print(f"  triggerer CPU while they wait: {s['cpu']:.0f}% of a core (idle {s['idle_cpu']:.0f}%) for "
              f"~{s['deferred'] / POLL_INTERVAL_S:.0f} ledger polls/s ({s['deferred']} triggers every "
              f"{POLL_INTERVAL_S:g} s, each reading the estate file and 3 ledger queries)")
        print(f"  ledger: {s['awaiting']} promotions awaiting approval; triggering took {s['triggered_s']:.0f} s "
              f"({s['retries']} POSTs retried); approved {s['approved']}: their deploy tasks started within "
              f"{s['approved_max_s']:.1f} s (median {s['approved_median_s']:.1f} s; last trigger fired at "
              f"{s['fired_max_s']:.1f} s), {s['still']} still deferred; triggerer 'blocked' warnings: {s['blocked']}")
        print(f"  check: {'PASS' if ok else 'FAIL'} (all deferred, 0 running, probe succeeded)")
        if not ok:
            sys.exit(1)


if __name__ == "__main__":
    main()
