"""`python -m devstack up|down`: the demo estate's peers (registry, 6 Docker hosts, demo images, and
in front of the prod hosts a real HAProxy, a real Prometheus and steady traffic: devstack/canary_front.py).

`up` leaves the servers running in the background and writes STATE/env with the Airflow
Connection variables that reach them, and with the evidence signing key and its trust root
(a key pair kept under STATE, reused by later runs); `down` stops them by pid and removes the network.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from pathlib import Path

from devstack.canary_front import APP_PATH, start_front, stop_front
from devstack.estate_lab import EstateLab
from devstack.keys import evidence_key_env

# tag, healthy, share of requests answered with HTTP 500 (every demo image serves the metrics app)
DEMO_VERSIONS = [("1.0.0", True, 0), ("1.1.0", True, 0), ("1.2.0-errors", True, 20), ("2.0.0-broken", False, 0)]
ENVIRONMENTS = {"dev": ["dev-1", "dev-2"], "stage": ["stage-1", "stage-2"], "prod": ["prod-1", "prod-2"]}
# Fixed, because the estate file names it (include/estate.yaml, prod's router settings).
FRONT = Path("/run/stella-demo")
APP_PORT = 8080


def up(state: Path) -> int:
    down(state, quiet=True)
    lab = EstateLab(state / "lab", environments=ENVIRONMENTS).start()
    digests = {tag: lab.push_web(tag, healthy=ok, error_pct=pct) for tag, ok, pct in DEMO_VERSIONS}
    # blue (prod-1) holds the traffic before the first release, so the first canary goes to green
    front = start_front(FRONT, {h: f"{lab.hosts[h].ip}:{APP_PORT}" for h in ENVIRONMENTS["prod"]},
                        weights={"prod-2": 0})
    env = {**lab.connection_env(), **evidence_key_env(state),
           "AIRFLOW_CONN_STELLA_PROMETHEUS": json.dumps({"conn_type": "stella_metrics", "host": front.prometheus_url})}
    env_lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    (state / "env").write_text("\n".join(env_lines) + "\n")
    print(f"registry   {lab.registry.url} (repository {lab.repository})")
    for name, host in lab.hosts.items():
        print(f"host       {name:8} {host.engine_url}")
    for tag, digest in digests.items():
        print(f"image      {lab.repository}:{tag} = {digest}")
    print(f"prod front {front.proxy_url}{APP_PATH} (HAProxy, socket {front.socket}), Prometheus {front.prometheus_url}")
    print(f"evidence   signed with {state / 'keys'}, verified against {env['STELLA_TRUST_DIR']}")
    return 0


def down(state: Path, quiet: bool = False) -> int:
    pid_file = state / "lab" / "registry" / "registry.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            pass
    stop_front(FRONT)
    lab = EstateLab(state / "lab", environments=ENVIRONMENTS)
    from devstack.hosts import DockerHostLab

    names = [n for hosts in lab.environments.values() for n in hosts]
    DockerHostLab(state / "lab" / "hosts", names, subnet_prefix=lab.subnet_prefix, bridge=lab.bridge).stop()
    if not quiet:
        print("demo estate stopped")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack")
    ap.add_argument("command", choices=["up", "down"])
    ap.add_argument("--state", default=os.environ.get("STELLA_DEMO_STATE", ".stella/demo"))
    args = ap.parse_args()
    state = Path(args.state).resolve()
    state.mkdir(parents=True, exist_ok=True)
    return up(state) if args.command == "up" else down(state)


if __name__ == "__main__":
    sys.exit(main())
