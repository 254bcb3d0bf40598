"""The demo web image with metrics: busybox httpd + three CGI scripts, for canary demos and tests.

Same metric names as devstack/metrics_app.py (the Python process tests use), so the same analysis
queries work against both:

    GET  /cgi-bin/app       one request to the app: `ok from VERSION`, or HTTP 500 `error from VERSION`
    GET  /cgi-bin/metrics   stella_demo_requests_total{version} / stella_demo_errors_total{version}
    GET  /cgi-bin/control?error_pct=20&latency_ms=50   change them while it runs
    GET  /health, /version, /  (as the plain demo image)

Errors are deterministic, as in metrics_app: with `error_pct` p, request n fails when
floor(n*p/100) > floor((n-1)*p/100), so exactly p of any 100 requests fail. The counters live in
/tmp of the container (a new container starts at zero, as a new process would). No latency
histogram (busybox has no clock finer than seconds in sh); latency_ms only delays the answer.
"""

from __future__ import annotations

from pathlib import Path

from devstack.images import build_and_push

STATE = "/tmp/stella-demo"

# `mkdir` is atomic: the lock keeps the counters exact under concurrent requests (httpd forks one
# CGI per request).
APP_CGI = f"""#!/bin/sh
d={STATE}
mkdir -p $d
until mkdir $d/lock 2>/dev/null; do usleep 500; done
n=$(( $(cat $d/requests 2>/dev/null || echo 0) + 1 ))
e=$(cat $d/errors 2>/dev/null || echo 0)
p=$(cat $d/error_pct 2>/dev/null || echo "${{ERROR_PCT:-0}}")
fail=0
if [ $(( n * p / 100 )) -gt $(( (n - 1) * p / 100 )) ]; then fail=1; e=$((e + 1)); fi
echo $n > $d/requests; echo $e > $d/errors
rmdir $d/lock
lat=$(cat $d/latency_ms 2>/dev/null || echo "${{LATENCY_MS:-0}}")
if [ "$lat" -gt 0 ]; then usleep $((lat * 1000)); fi
if [ $fail = 1 ]; then
  printf 'Status: 500 Internal Server Error\\r\\nContent-Type: text/plain\\r\\n\\r\\nerror from %s\\n' "$APP_VERSION"
else
  printf 'Content-Type: text/plain\\r\\n\\r\\nok from %s\\n' "$APP_VERSION"
fi
"""

METRICS_CGI = f"""#!/bin/sh
d={STATE}
n=$(cat $d/requests 2>/dev/null || echo 0)
e=$(cat $d/errors 2>/dev/null || echo 0)
v="version=\\"$APP_VERSION\\""
printf 'Content-Type: text/plain; version=0.0.4\\r\\n\\r\\n'
printf '# HELP stella_demo_requests_total Requests to the app.\\n# TYPE stella_demo_requests_total counter\\n'
printf 'stella_demo_requests_total{{%s}} %s\\n' "$v" "$n"
printf '# HELP stella_demo_errors_total Requests answered with HTTP 500.\\n# TYPE stella_demo_errors_total counter\\n'
printf 'stella_demo_errors_total{{%s}} %s\\n' "$v" "$e"
"""

CONTROL_CGI = f"""#!/bin/sh
d={STATE}
mkdir -p $d
for kv in $(echo "$QUERY_STRING" | tr '&' ' '); do
  k=${{kv%%=*}}; val=${{kv#*=}}
  case "$val" in
    ''|*[!0-9]*) printf 'Status: 400 Bad Request\\r\\n\\r\\n%s must be a whole number\\n' "$k"; exit 0;;
  esac
  case "$k" in
    error_pct)
      if [ "$val" -gt 100 ]; then printf 'Status: 400 Bad Request\\r\\n\\r\\nerror_pct is 0..100\\n'; exit 0; fi
      echo "$val" > $d/error_pct;;
    latency_ms) echo "$val" > $d/latency_ms;;
    *) printf 'Status: 400 Bad Request\\r\\n\\r\\nunknown setting %s\\n' "$k"; exit 0;;
  esac
done
p=$(cat $d/error_pct 2>/dev/null || echo "${{ERROR_PCT:-0}}")
lat=$(cat $d/latency_ms 2>/dev/null || echo "${{LATENCY_MS:-0}}")
printf 'Content-Type: text/plain\\r\\n\\r\\nerror_pct=%s latency_ms=%s\\n' "$p" "$lat"
"""

# The image builder writes plain files; the scripts become executable when the container starts.
CMD = ("chmod 0755 /www/cgi-bin/*; httpd -f -p 8080 -h /www & pid=$!; "
       "trap 'kill $pid; exit 0' TERM INT; wait $pid")


def build_metrics_web_image(registry_host_port: str, repository: str, tag: str, *, workdir: Path, version: str,
                            error_pct: int = 0, healthy: bool = True) -> str:
    """Push the demo web image with the app and metrics scripts; return its digest."""
    if not 0 <= error_pct <= 100:
        raise ValueError(f"error_pct is 0..100, not {error_pct}")
    files = {
        "/www/index.html": f"<html><body><h1>stella demo</h1><p id=\"version\">{version}</p></body></html>\n",
        "/www/version": f"{version}\n",
        "/www/cgi-bin/app": APP_CGI,
        "/www/cgi-bin/metrics": METRICS_CGI,
        "/www/cgi-bin/control": CONTROL_CGI,
    }
    if healthy:
        files["/www/health"] = "ok"
    return build_and_push(registry_host_port, repository, tag, workdir=workdir, files=files,
                          cmd=["sh", "-c", CMD], env={"APP_VERSION": version, "ERROR_PCT": str(error_pct)},
                          expose=[8080])
