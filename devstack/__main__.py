"""`python -m devstack up|down`: the demo estate's peers (registry, 4 Docker hosts, demo images).

`up` leaves the servers running in the background and writes STATE/env with the Airflow
Connection variables that reach them, and with the evidence signing key and its trust root
(a key pair kept under STATE, reused by later runs); `down` stops them by pid and removes the network.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from pathlib import Path

from devstack.estate_lab import EstateLab
from devstack.keys import evidence_key_env

DEMO_VERSIONS = [("1.0.0", True), ("1.1.0", True), ("2.0.0-broken", False)]


def up(state: Path) -> int:
    down(state, quiet=True)
    lab = EstateLab(state / "lab").start()
    digests = {tag: lab.push_web(tag, healthy=ok) for tag, ok in DEMO_VERSIONS}
    env = {**lab.connection_env(), **evidence_key_env(state)}
    env_lines = [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    (state / "env").write_text("\n".join(env_lines) + "\n")
    print(f"registry   {lab.registry.url} (repository {lab.repository})")
    for name, host in lab.hosts.items():
        print(f"host       {name:8} {host.engine_url}")
    for tag, digest in digests.items():
        print(f"image      {lab.repository}:{tag} = {digest}")
    print(f"evidence   signed with {state / 'keys'}, verified against {env['STELLA_TRUST_DIR']}")
    return 0


def down(state: Path, quiet: bool = False) -> int:
    pid_file = state / "lab" / "registry" / "registry.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        except (ValueError, ProcessLookupError):
            pass
    lab = EstateLab(state / "lab")
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
