"""A tiny HTTP app for canary tests and demos: `/` answers (or fails), `/metrics` counts, by version.

Runs in its own process (`python -m devstack.metrics_app --port 8081 --version v2 --error-rate 0.2`).
`/stats` gives the same counters as JSON (`error_ratio`: errors / requests since start).
Its error rate and latency can be changed while it runs: `POST /control?error_rate=0.2&latency_ms=50`.
Errors are deterministic: with rate r, request n fails when floor(n*r) > floor((n-1)*r), so exactly
20 % of any 100 requests fail (a test can predict the ratio Prometheus will see).

Metrics (Prometheus text format 0.0.4):
  stella_demo_requests_total{version}         every request to `/`
  stella_demo_errors_total{version}           the ones answered with HTTP 500
  stella_demo_request_duration_seconds{version} histogram (le: 0.005 .. 2.5)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _State:
    def __init__(self, version: str, error_rate: float, latency_ms: float):
        self.version, self.error_rate, self.latency_ms = version, error_rate, latency_ms
        self.requests = self.errors = 0
        self.buckets = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.lock = threading.Lock()

    def count(self) -> bool:
        """Counts one request; True when it must fail."""
        with self.lock:
            self.requests += 1
            n, r = self.requests, self.error_rate
            fail = math.floor(n * r) > math.floor((n - 1) * r)
            if fail:
                self.errors += 1
            return fail

    def observe(self, seconds: float) -> None:
        with self.lock:
            self.duration_sum += seconds
            for i, le in enumerate(BUCKETS):
                if seconds <= le:
                    self.buckets[i] += 1

    def exposition(self) -> str:
        v = f'version="{self.version}"'
        with self.lock:
            lines = ["# HELP stella_demo_requests_total Requests to /.", "# TYPE stella_demo_requests_total counter",
                     f"stella_demo_requests_total{{{v}}} {self.requests}",
                     "# HELP stella_demo_errors_total Requests to / answered with HTTP 500.",
                     "# TYPE stella_demo_errors_total counter",
                     f"stella_demo_errors_total{{{v}}} {self.errors}",
                     "# HELP stella_demo_request_duration_seconds Time to answer /.",
                     "# TYPE stella_demo_request_duration_seconds histogram"]
            lines += [f'stella_demo_request_duration_seconds_bucket{{{v},le="{le}"}} {c}'
                      for le, c in zip(BUCKETS, self.buckets, strict=True)]
            lines += [f'stella_demo_request_duration_seconds_bucket{{{v},le="+Inf"}} {self.requests}',
                      f"stella_demo_request_duration_seconds_sum{{{v}}} {self.duration_sum}",
                      f"stella_demo_request_duration_seconds_count{{{v}}} {self.requests}"]
        return "\n".join(lines) + "\n"


def serve(host: str, port: int, version: str, error_rate: float, latency_ms: float) -> None:
    state = _State(version, error_rate, latency_ms)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: tests send thousands
            pass

        def _send(self, code: int, body: str, ctype: str = "text/plain; charset=utf-8") -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = urllib.parse.urlsplit(self.path).path
            if path == "/stats":  # the same counters as JSON, for the http_json provider
                with state.lock:
                    stats = {"version": state.version, "requests": state.requests, "errors": state.errors,
                             "error_ratio": state.errors / state.requests if state.requests else None}
                self._send(200, json.dumps(stats), "application/json")
            elif path == "/metrics":
                self._send(200, state.exposition(), "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/":
                t0 = time.monotonic()
                if state.latency_ms:
                    time.sleep(state.latency_ms / 1000)
                fail = state.count()
                state.observe(time.monotonic() - t0)
                self._send(500 if fail else 200, f"{'error' if fail else 'ok'} from {state.version}\n")
            else:
                self._send(404, "not found\n")

        def do_POST(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/control":
                self._send(404, "not found\n")
                return
            params = dict(urllib.parse.parse_qsl(url.query))
            try:
                with state.lock:
                    if "error_rate" in params:
                        rate = float(params["error_rate"])
                        if not 0 <= rate <= 1:
                            raise ValueError("error_rate is between 0 and 1")
                        state.error_rate = rate
                    if "latency_ms" in params:
                        state.latency_ms = max(0.0, float(params["latency_ms"]))
            except ValueError as exc:
                self._send(400, f"{exc}\n")
                return
            self._send(200, f"error_rate={state.error_rate} latency_ms={state.latency_ms}\n")

    server = ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()


@dataclass
class MetricsApp:
    """A running metrics app process owned by the caller; `stop()` ends it by pid."""

    url: str
    version: str
    pid: int
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def control(self, *, error_rate: float | None = None, latency_ms: float | None = None) -> None:
        params = {k: str(v) for k, v in (("error_rate", error_rate), ("latency_ms", latency_ms)) if v is not None}
        req = urllib.request.Request(f"{self.url}/control?{urllib.parse.urlencode(params)}", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        self._proc = None


def start_metrics_app(port: int, version: str, *, host: str = "127.0.0.1", error_rate: float = 0.0,
                      latency_ms: float = 0.0, ready_timeout: float = 10.0) -> MetricsApp:
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    # stderr to a file, not a pipe: a long run must never block on a full pipe nobody reads
    errors = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "devstack.metrics_app", "--host", host, "--port", str(port),
                             "--version", version, "--error-rate", str(error_rate), "--latency-ms", str(latency_ms)],
                            env=env, stdout=subprocess.DEVNULL, stderr=errors)
    app = MetricsApp(url=f"http://{host}:{port}", version=version, pid=proc.pid, _proc=proc)
    deadline = time.monotonic() + ready_timeout
    while True:
        try:
            with urllib.request.urlopen(f"{app.url}/metrics", timeout=1):
                return app
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                app.stop()
                errors.seek(0)
                err = errors.read().decode(errors="replace")[-500:]
                raise RuntimeError(f"metrics app {version} on {host}:{port} did not start: "
                                   f"{err or 'timeout'}") from None
            time.sleep(0.1)


class TrafficDriver:
    """Sends GET requests to a URL at about `rps` per second from a thread, until `stop()`."""

    def __init__(self, url: str, rps: float = 20.0):
        self.url, self.interval = url, 1.0 / rps
        self.sent = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"traffic {url}")

    def start(self) -> TrafficDriver:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sent += 1
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    pass
            except (urllib.error.URLError, OSError):
                self.failed += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m devstack.metrics_app", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--version", default=os.environ.get("APP_VERSION", "v1"))
    p.add_argument("--error-rate", type=float, default=float(os.environ.get("ERROR_RATE", "0")))
    p.add_argument("--latency-ms", type=float, default=float(os.environ.get("LATENCY_MS", "0")))
    a = p.parse_args()
    serve(a.host, a.port, a.version, a.error_rate, a.latency_ms)


if __name__ == "__main__":
    main()
