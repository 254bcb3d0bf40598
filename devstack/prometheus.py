"""Start and stop a real Prometheus (Debian's 2.42) scraping given targets every second."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROMETHEUS_BINARY = "/usr/bin/prometheus"


class PrometheusStartError(RuntimeError):
    """Prometheus could not be started (binary missing, port busy, crashed, too slow)."""


@dataclass
class PrometheusServer:
    """A running Prometheus owned by the caller; `stop()` ends it by pid."""

    url: str
    pid: int
    workdir: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def query(self, promql: str) -> Any:
        """The `data` of an instant query (raises on an error answer)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)["data"]

    def wait_for_series(self, promql: str, timeout_s: float = 30.0) -> Any:
        """Wait until the query returns at least one series (scrapes have landed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            data = self.query(promql)
            if data["result"]:
                return data
            time.sleep(0.5)
        raise TimeoutError(f"no series for {promql!r} after {timeout_s:.0f} s (are the targets up?)")

    def stop(self, timeout: float = 10.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        self._proc = None


def start_prometheus(workdir: Path, targets: list[str], *, host: str = "127.0.0.1", port: int = 9090,
                     scrape_interval_s: float = 1.0, ready_timeout: float = 30.0,
                     metrics_path: str = "/metrics", labels: dict[str, dict[str, str]] | None = None
                     ) -> PrometheusServer:
    """Prometheus with its own config, data dir, log and pid file under `workdir`, scraping
    `targets` ("host:port", path `metrics_path`) every `scrape_interval_s`; `labels` adds labels per
    target (e.g. {"10.0.0.5:8080": {"target": "prod-1"}}), as people label their scrape targets."""
    if not os.access(PROMETHEUS_BINARY, os.X_OK):
        raise PrometheusStartError(f"{PROMETHEUS_BINARY} not found (apt-get install prometheus)")
    workdir = Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    interval = f"{int(scrape_interval_s * 1000)}ms"
    config = {"global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
              "scrape_configs": [{"job_name": "apps", "metrics_path": metrics_path,
                                  "static_configs": [{"targets": [t], "labels": (labels or {}).get(t, {})}
                                                     for t in targets]}]}
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen([PROMETHEUS_BINARY, f"--config.file={workdir / 'prometheus.yml'}",
                             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address={host}:{port}",
                             "--storage.tsdb.retention.time=2h", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    (workdir / "prometheus.pid").write_text(f"{proc.pid}\n")
    server = PrometheusServer(url=f"http://{host}:{port}", pid=proc.pid, workdir=workdir, _proc=proc)
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=1) as r:
                if r.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            tail = (workdir / "prometheus.log").read_text(errors="replace")[-800:]
            raise PrometheusStartError(f"Prometheus on {host}:{port} did not become ready: {tail or 'timeout'}")
        time.sleep(0.2)
