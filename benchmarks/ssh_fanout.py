"""One change (upload a ~2 KB file, run one command) to N SSH hosts: stella vs Ansible vs bare asyncssh.

Hosts: N real OpenSSH servers, each in its own network namespace with its own address on one
bridge (10.204.0.0/24, `stella-br4`; DockerHostLab.start_network() without dockerd), root login
with one client key, host keys checked against one known_hosts file by every contender.
The change on host h: write /run/stella-bench/<h>/app.conf (2048 bytes, per-host path because the
namespaces share one filesystem; the dirs are made before each run, outside the clock), then
`sha256sum` it; every result is checked.

- stella:  stella_operators.targets.ssh.fanout.apply_change over endpoints built from Airflow
           Connections (AIRFLOW_CONN_* with extra key_file + host_key) through the SSH provider's
           async hook: what a deployment pays, Connection lookups included.
- bare:    asyncssh.connect + one exec per host (stdin -> cat, then the command), asyncio.gather:
           the floor for asyncssh.
- bare+sftp: asyncssh.connect + SFTP put + run: how one usually writes it by hand.
- ansible: ansible-playbook (ansible-core, its own venv), forks = N, pipelining on, gather_facts
           off, host key checking on (UserKnownHostsFile = the same file), copy + command modules,
           a fresh ControlPersist dir per run (no warm connections).
Wall time of each run; Ansible's includes its process start (it is how it is used), ours and the
bare loops run in this process (imports done). Each N: stella and bare `--repeat` times
interleaved (median), Ansible once (`--ansible-repeat`).

Usage (root; hold the lab lock):
  flock /tmp/stella-lab.lock python benchmarks/ssh_fanout.py [--hosts 10 50 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

import asyncssh  # noqa: E402

from devstack.hosts import DockerHostLab  # noqa: E402
from devstack.sshd import SshServer, client_key  # noqa: E402
from stella_operators.hooks.ssh_host import ssh_endpoint  # noqa: E402
from stella_operators.targets.ssh.fanout import RemoteFile, apply_change  # noqa: E402

PREFIX, BRIDGE = "10.204.0", "stella-br4"
ANSIBLE = os.environ.get("STELLA_ANSIBLE_PLAYBOOK", "/opt/ansible-venv/bin/ansible-playbook")
DATA = (b"# stella fan-out benchmark\n" + b"key = value-0123456789abcdef\n" * 80)[:2047] + b"\n"
EXPECTED = hashlib.sha256(DATA).hexdigest()

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - copy: {dest: "/run/stella-bench/{{ inventory_hostname }}/app.conf", src: "%s", mode: "0644"}
    - command: sha256sum /run/stella-bench/{{ inventory_hostname }}/app.conf
      register: sum
      changed_when: false
      failed_when: sum.rc != 0 or sum.stdout.split()[0] != "%s"
"""


def path_of(host: str) -> str:
    return f"/run/stella-bench/{host}/app.conf"


class Lab:
    def __init__(self, workdir: Path, n: int):
        self.names = [f"b{i}" for i in range(n)]
        self.lab = DockerHostLab(workdir, self.names, subnet_prefix=PREFIX, bridge=BRIDGE)
        self.key = client_key(workdir)
        self.servers: list[SshServer] = []
        self.known_hosts = workdir / "known_hosts"
        self.workdir = workdir

    def start(self) -> None:
        t0 = time.monotonic()
        self.lab.start_network()
        self.servers = [SshServer(self.workdir / n, listen=self.lab.host_ip(i), port=22,
                                  netns=self.lab.netns_name(n), authorized_keys=[self.key.with_suffix(".pub")])
                        for i, n in enumerate(self.names)]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(SshServer.start, self.servers))
        self.known_hosts.write_text("".join(s.host_key_line() + "\n" for s in self.servers))
        print(f"lab: {len(self.servers)} sshd hosts in namespaces up in {time.monotonic() - t0:.1f} s", flush=True)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
        self.lab.stop()

    def ip(self, i: int) -> str:
        return self.lab.host_ip(i)


def reset(lab: Lab, n: int) -> None:
    """Empty per-host dirs before each run (Ansible's copy module wants the dir to exist; a `file`
    task would double its work, so every contender gets the dirs made beforehand)."""
    shutil.rmtree("/run/stella-bench", ignore_errors=True)
    for name in lab.names[:n]:
        Path(f"/run/stella-bench/{name}").mkdir(parents=True)


# --- contenders ----------------------------------------------------------------------------------
def run_stella(lab: Lab, n: int) -> float:
    for i, name in enumerate(lab.names[:n]):
        os.environ[f"AIRFLOW_CONN_BENCH_{name.upper()}"] = json.dumps({
            "conn_type": "ssh", "host": lab.ip(i), "port": 22, "login": "root",
            "extra": {"key_file": str(lab.key), "host_key": " ".join(lab.servers[i].host_key_line().split()[1:3])}})
    t0 = time.perf_counter()
    endpoints = [ssh_endpoint(name, f"bench_{name}") for name in lab.names[:n]]
    results = apply_change(endpoints, files=lambda ep: [RemoteFile(path_of(ep.name), DATA)],
                           command=lambda ep: ["sha256sum", path_of(ep.name)], timeout_s=120)
    seconds = time.perf_counter() - t0
    bad = [r for r in results if not r.ok or not r.stdout.startswith(EXPECTED)]
    if bad:
        raise SystemExit(f"stella: {len(bad)} host(s) failed, e.g. {bad[0]}")
    return seconds


async def _bare(lab: Lab, n: int, sftp: bool) -> None:
    known = str(lab.known_hosts)

    async def one(i: int, name: str) -> str:
        async with asyncssh.connect(lab.ip(i), username="root", client_keys=[str(lab.key)], known_hosts=known) as c:
            path = path_of(name)
            if sftp:
                await c.run(f"mkdir -p /run/stella-bench/{name}", check=True)
                async with c.start_sftp_client() as s:
                    async with s.open(path, "wb") as f:
                        await f.write(DATA)
                r = await c.run(f"sha256sum {path}", check=True)
            else:
                r = await c.run(f"mkdir -p /run/stella-bench/{name} && cat > {path} && sha256sum {path}",
                                input=DATA, encoding=None, check=True)
            out = r.stdout
            return out.decode() if isinstance(out, bytes) else str(out)

    outs = await asyncio.gather(*(one(i, name) for i, name in enumerate(lab.names[:n])))
    if not all(o.startswith(EXPECTED) for o in outs):
        raise SystemExit("bare asyncssh: wrong checksum")


def run_bare(lab: Lab, n: int, sftp: bool = False) -> float:
    t0 = time.perf_counter()
    asyncio.run(_bare(lab, n, sftp))
    return time.perf_counter() - t0


def run_ansible(lab: Lab, n: int) -> tuple[float, float]:
    work = Path(tempfile.mkdtemp(prefix="ansible-", dir=lab.workdir))
    src = work / "app.conf"
    src.write_bytes(DATA)
    (work / "play.yml").write_text(PLAYBOOK % (src, EXPECTED))
    (work / "inventory.ini").write_text("[all]\n" + "".join(
        f"{name} ansible_host={lab.ip(i)}\n" for i, name in enumerate(lab.names[:n])))
    env = {**os.environ, "ANSIBLE_PIPELINING": "True", "ANSIBLE_HOST_KEY_CHECKING": "True",
           "ANSIBLE_FORKS": str(n), "ANSIBLE_REMOTE_USER": "root", "ANSIBLE_PRIVATE_KEY_FILE": str(lab.key),
           "ANSIBLE_SSH_ARGS": f"-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={lab.known_hosts}",
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"), "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
           "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3", "ANSIBLE_RETRY_FILES_ENABLED": "False",
           "ANSIBLE_CONFIG": str(work / "none.cfg")}
    r0 = os.times()
    t0 = time.perf_counter()
    proc = subprocess.run([ANSIBLE, "-i", str(work / "inventory.ini"), "-f", str(n), str(work / "play.yml")],
                          env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    r1 = os.times()
    if proc.returncode != 0:
        raise SystemExit(f"ansible failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    _stop_control_masters(work / "cp")  # not part of the change: after the clock stopped
    cpu = (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)
    return seconds, cpu


def _stop_control_masters(cp_dir: Path) -> None:
    """End the ControlPersist ssh masters this run's Ansible left, by pid (their command line names
    our own control path dir, unique to this run)."""
    needle = str(cp_dir).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), 15)
            except OSError:
                continue


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"received signal {signal.Signals(signum).name}")


def main() -> None:
    # asyncssh logs every channel at INFO: off for every contender (Ansible logs nothing either)
    asyncssh.set_log_level(logging.WARNING)
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", type=int, nargs="+", default=[10, 50, 100])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--ansible-repeat", type=int, default=1)
    ap.add_argument("--skip-ansible", action="store_true")
    args = ap.parse_args()
    # SIGTERM/SIGHUP (a timeout, a closed terminal) unwind like Ctrl-C, so the hosts are stopped
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    if not args.skip_ansible and not os.access(ANSIBLE, os.X_OK):
        raise SystemExit(f"{ANSIBLE} not found: run scripts/setup.sh (ansible-core in /opt/ansible-venv)")
    workdir = Path(tempfile.mkdtemp(prefix="stella-ssh-bench-"))
    lab = Lab(workdir, max(args.hosts))
    try:
        lab.start()
        rows = []
        for n in args.hosts:
            stella, bare, sftp = [], [], []
            for _ in range(args.repeat):
                reset(lab, n)
                stella.append(run_stella(lab, n))
                reset(lab, n)
                bare.append(run_bare(lab, n))
                reset(lab, n)
                sftp.append(run_bare(lab, n, sftp=True))
            ans, ans_cpu = [], []
            for _ in range(0 if args.skip_ansible else args.ansible_repeat):
                reset(lab, n)
                s, c = run_ansible(lab, n)
                ans.append(s)
                ans_cpu.append(c)
            row = {"n": n, "stella": statistics.median(stella), "bare": statistics.median(bare),
                   "bare_sftp": statistics.median(sftp),
                   "ansible": statistics.median(ans) if ans else None,
                   "ansible_cpu_per_host": statistics.median(ans_cpu) / n if ans_cpu else None}
            rows.append(row)
            print(json.dumps(row), flush=True)
        load = Path("/proc/loadavg").read_text().split()[:3]
        print(f"\nN hosts | stella s | bare asyncssh s | bare+sftp s | ansible s | stella/bare | ansible/stella "
              f"| ansible CPU s/host   (load {' '.join(load)}, {os.cpu_count()} CPUs)")
        for r in rows:
            ans_txt = f"{r['ansible']:.2f}" if r["ansible"] else "-"
            ratio = f"{r['ansible'] / r['stella']:.1f}x" if r["ansible"] else "-"
            cpu = f"{r['ansible_cpu_per_host']:.2f}" if r["ansible_cpu_per_host"] else "-"
            print(f"{r['n']:7d} | {r['stella']:8.2f} | {r['bare']:15.2f} | {r['bare_sftp']:11.2f} | {ans_txt:>9} "
                  f"| {r['stella'] / r['bare']:10.2f}x | {ratio:>14} | {cpu}")
    finally:
        lab.stop()
        shutil.rmtree("/run/stella-bench", ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
