"""Metric analysis against a real Prometheus 2.42 scraping real metrics apps (devstack) every second:
pass on a healthy version, fail fast on 20 % errors, inconclusive on a series that does not exist,
and the deferrable RunAnalysisOperator run by Airflow (`dag.test()` runs its trigger inline)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest

from devstack.metrics_app import TrafficDriver, start_metrics_app
from devstack.prometheus import start_prometheus
from devstack.registry import free_port
from stella_operators.analysis.model import Analysis
from stella_operators.analysis.providers import Endpoint, open_sampler
from stella_operators.analysis.runner import run_analysis

RATE_WINDOW_S = 3  # the rate() window of the queries below: errors show fully after this long


def error_ratio(version: str) -> str:
    w = f"[{RATE_WINDOW_S}s]"
    return (f'sum(rate(stella_demo_errors_total{{version="{version}"}}{w})) / '
            f'sum(rate(stella_demo_requests_total{{version="{version}"}}{w}))')


@pytest.fixture(scope="module")
def metrics_lab(tmp_path_factory):
    """Prometheus scraping two apps (stable v1, canary v2), each receiving ~20 requests/s."""
    apps, drivers, prom = [], [], None
    try:
        apps = [start_metrics_app(free_port(), "v1"), start_metrics_app(free_port(), "v2")]
        prom = start_prometheus(tmp_path_factory.mktemp("prometheus"), [a.url.split("//")[1] for a in apps],
                                port=free_port())
        drivers = [TrafficDriver(a.url + "/", rps=20).start() for a in apps]
        for a in apps:  # two scrapes with traffic in between: rate() has data
            prom.wait_for_series(f'rate(stella_demo_requests_total{{version="{a.version}"}}[{RATE_WINDOW_S}s]) > 0')
        yield prom, {a.version: a for a in apps}
    finally:
        for d in drivers:
            d.stop()
        if prom is not None:
            prom.stop()
        for a in apps:
            a.stop()


def analyse(prom_url: str, analysis: dict) -> tuple[dict, float]:
    async def go():
        async with open_sampler({"prometheus": Endpoint(prom_url)}) as take:
            return await run_analysis(Analysis.model_validate(analysis), take, datetime.now(UTC))
    t0 = time.monotonic()
    done = asyncio.run(go())
    return done.report(), time.monotonic() - t0


def test_healthy_version_passes(metrics_lab):
    prom, _ = metrics_lab
    report, _ = analyse(prom.url, {"metrics": [
        {"name": "error-rate", "query": error_ratio("v1"), "success_condition": "result < 0.05",
         "interval_s": 1, "count": 3}]})
    assert report["outcome"] == "pass", report["summary"]
    assert [m["values"] for m in report["metrics"][0]["measurements"]] == [[0.0]] * 3


def test_twenty_percent_errors_fail_within_the_bound(metrics_lab):
    prom, apps = metrics_lab
    metric = {"name": "error-rate", "query": error_ratio("v2"), "success_condition": "result < 0.05",
              "interval_s": 2, "count": 30, "failure_limit": 1}
    bound_s = 2 * (1 + 1)                       # interval x (failure_limit + 1)
    margin_s = RATE_WINDOW_S                    # scrapes every 1 s; the rate window fills in 3 s
    apps["v2"].control(error_rate=0.2)          # the canary starts failing now
    try:
        report, took = analyse(prom.url, {"metrics": [metric]})
    finally:
        apps["v2"].control(error_rate=0.0)
    assert report["outcome"] == "fail" and report["reasons"] == ["analysis.failure_limit"], report["summary"]
    assert took <= bound_s + margin_s, f"failed after {took:.1f} s, bound {bound_s} s + {margin_s} s"
    failed = [m for m in report["metrics"][0]["measurements"] if m["phase"] == "failed"]
    assert len(failed) == 2 and all(m["values"][0] > 0.05 for m in failed)


def test_series_that_does_not_exist_is_inconclusive(metrics_lab):
    prom, _ = metrics_lab
    report, _ = analyse(prom.url, {"metrics": [
        {"name": "error-rate", "query": error_ratio("v9-not-deployed"), "success_condition": "result < 0.05",
         "interval_s": 1, "count": 3}]})
    assert report["outcome"] == "inconclusive"
    assert report["reasons"] == ["analysis.inconclusive_limit"]
    assert report["metrics"][0]["measurements"][0]["message"] == "no data"


def test_prometheus_query_error_reaches_the_report(metrics_lab):
    prom, _ = metrics_lab
    report, _ = analyse(prom.url, {"metrics": [
        {"name": "error-rate", "query": "sum(rate(stella_demo_errors_total[3s]", "success_condition": "result < 1",
         "interval_s": 0.2, "count": 3, "consecutive_error_limit": 1}]})
    assert report["outcome"] == "fail" and report["reasons"] == ["analysis.consecutive_errors"]
    assert "Prometheus bad_data" in report["metrics"][0]["measurements"][0]["message"]


def test_http_json_provider_reads_the_apps_stats(metrics_lab):
    _, apps = metrics_lab

    async def go():
        async with open_sampler({"http_json": Endpoint(apps["v1"].url)}) as take:
            return await run_analysis(Analysis.model_validate({"metrics": [
                {"name": "errors", "provider": "http_json", "query": "/stats", "json_path": "error_ratio",
                 "baseline_query": apps["v2"].url + "/stats", "success_condition": "result <= baseline + 0.01",
                 "interval_s": 0.5, "count": 2}]}), take, datetime.now(UTC))
    report = asyncio.run(go()).report()
    assert report["outcome"] == "pass", report["summary"]
    assert report["metrics"][0]["measurements"][0]["values"] == [0.0]


DAG_FILE = """
import json, os
from datetime import datetime, timezone
from airflow.sdk import DAG
from stella_operators.operators.analysis import RunAnalysisOperator

with DAG("t_analysis", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):
    RunAnalysisOperator(task_id="analyse", analysis=json.loads(os.environ["T_ANALYSIS"]),
                        prometheus_conn_id="t_prometheus", retries=0)
"""


@pytest.mark.parametrize("version, error_rate, state, outcome", [
    ("v1", 0.0, "success", "pass"),
    ("v2", 0.2, "failed", None),
])
def test_deferrable_operator_in_a_dag(metrics_lab, airflow_db, tmp_path, monkeypatch, version, error_rate,
                                      state, outcome):
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    prom, apps = metrics_lab
    host, port = prom.url.split("//")[1].split(":")
    monkeypatch.setenv("AIRFLOW_CONN_T_PROMETHEUS", json.dumps({"conn_type": "stella_metrics", "host": host,
                                                                "port": int(port)}))
    monkeypatch.setenv("T_ANALYSIS", json.dumps({"metrics": [
        {"name": "error-rate", "query": error_ratio(version), "success_condition": "result < 0.05",
         "interval_s": 1, "count": 3, "initial_delay_s": RATE_WINDOW_S}]}))
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "t_analysis.py").write_text(DAG_FILE)
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(bag, "dags-folder", None)
    apps[version].control(error_rate=error_rate)
    try:
        dr = bag.get_dag("t_analysis").test()
    finally:
        apps[version].control(error_rate=0.0)
    [ti] = dr.get_task_instances()
    assert ti.state == state
    if outcome:
        assert ti.xcom_pull(task_ids="analyse")["outcome"] == outcome
