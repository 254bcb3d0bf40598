"""A lab of Docker Engine "hosts", each dockerd in its own network namespace with its own IP.

Layout (for ``subnet_prefix="10.200.0"``, ``bridge="stella-br0"``, ``names=["a", "b"]``)::

    root namespace:  bridge stella-br0 = 10.200.0.1/24   (a registry can listen here)
    netns <tag>-a:   eth0 = 10.200.0.10/24, dockerd on tcp://10.200.0.10:2375
    netns <tag>-b:   eth0 = 10.200.0.11/24, dockerd on tcp://10.200.0.11:2375

Each dockerd is started with ``nsenter --net=/var/run/netns/NS dockerd ...`` (``ip netns exec``
hides the cgroup mounts), with its own data-root (under ``workdir``), exec-root, pidfile, socket,
config file and log file. Namespaces share the filesystem, so nothing is shared between hosts.
Iptables chains that dockerd creates live inside each namespace and die with it; the root
namespace is only given the bridge and the veth ends, which :meth:`DockerHostLab.stop` removes.

Needs root, ``ip`` (iproute2), ``nsenter`` and ``dockerd``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RUN_ROOT = Path("/run/stella-lab")  # short paths: unix socket paths are limited to ~100 chars
NETNS_DIR = Path("/var/run/netns")


class LabError(RuntimeError):
    """The lab could not be started (the message carries the failing command or the dockerd log tail)."""


@dataclass
class DockerHost:
    name: str
    ip: str
    engine_url: str      # tcp://IP:2375 (plain HTTP, reachable from the root namespace)
    socket: str          # unix socket path of the same engine
    pid: int             # dockerd pid
    netns: str = ""
    data_root: str = ""
    log_path: str = ""


def missing_prerequisites() -> list[str]:
    """Why this machine cannot run the lab (empty when it can)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root (network namespaces and dockerd need root)")
    for tool in ("ip", "nsenter", "dockerd"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found on PATH")
    return problems


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def _link_exists(name: str) -> bool:
    return _run("ip", "link", "show", "dev", name, check=False).returncode == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still "exists": reap it if it is ours
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _stop_pid(pid: int, timeout_s: float = 20.0) -> None:
    """SIGTERM, wait, then SIGKILL. dockerd stops its containers and its containerd on SIGTERM."""
    if not _pid_alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return
        time.sleep(0.1)
    log.warning("pid %s did not stop within %.0f s: SIGKILL", pid, timeout_s)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _pids_in_netns(netns: str) -> list[int]:
    proc = _run("ip", "netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split() if p.strip().isdigit()]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log file)"


def _ping(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _kill_containers(ip: str) -> None:
    """SIGKILL every running container of the engine on `ip` (best effort, Engine API over tcp)."""
    base = f"http://{ip}:2375"
    try:
        with urllib.request.urlopen(f"{base}/containers/json", timeout=5) as resp:
            ids = [c["Id"] for c in json.loads(resp.read())]
        for cid in ids:
            req = urllib.request.Request(f"{base}/containers/{cid}/kill", method="POST")
            try:
                urllib.request.urlopen(req, timeout=5).close()
            except urllib.error.HTTPError:
                pass  # already stopped
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.debug("could not kill the containers of %s: %s", base, exc)


def _iptables_chains() -> set[str]:
    """Names of chains in the root namespace (filter + nat), as `table:chain`."""
    chains: set[str] = set()
    for table in ("filter", "nat"):
        proc = _run("iptables", "-t", table, "-S", check=False)
        for line in proc.stdout.splitlines():
            if line.startswith("-N "):
                chains.add(f"{table}:{line.split()[1]}")
    return chains


class DockerHostLab:
    """Start/stop N dockerd "hosts" on a private bridge. Use as a context manager or call start()/stop()."""

    def __init__(self, workdir: Path, names: list[str], *, subnet_prefix: str = "10.200.0",
                 bridge: str = "stella-br0", insecure_registries: list[str] | None = None,
                 ping_timeout_s: float = 30.0):
        if not names:
            raise ValueError("a lab needs at least one host name")
        if len(set(names)) != len(names):
            raise ValueError(f"host names must be unique: {names}")
        if len(bridge) > 15:
            raise ValueError(f"bridge name {bridge!r} is longer than 15 characters")
        parts = subnet_prefix.split(".")
        if len(parts) != 3 or not all(p.isdigit() and 0 <= int(p) <= 255 for p in parts):
            raise ValueError(f"subnet_prefix must look like '10.200.0', got {subnet_prefix!r}")
        if len(names) > 200:
            raise ValueError("at most 200 hosts per lab")
        self.workdir = Path(workdir)
        self.names = list(names)
        self.subnet_prefix = subnet_prefix
        self.bridge = bridge
        self.bridge_ip = f"{subnet_prefix}.1"
        self.insecure_registries = list(insecure_registries or [])
        self.ping_timeout_s = ping_timeout_s
        # One short tag per lab (bridge + prefix) keeps namespace/veth names of two labs apart.
        self.tag = hashlib.sha1(f"{bridge}/{subnet_prefix}".encode()).hexdigest()[:5]
        self.hosts: list[DockerHost] = []
        self.leftover_root_chains: list[str] = []
        self.start_seconds: float | None = None
        self._chains_before: set[str] = set()
        self._network_up = False
        self._popen: dict[str, subprocess.Popen] = {}

    # naming -------------------------------------------------------------------------------
    def netns_name(self, name: str) -> str:
        return f"stl{self.tag}-{name}"

    def _veth(self, i: int) -> str:
        return f"sv{self.tag}h{i}"  # <= 15 chars for i < 1000

    def _run_dir(self, name: str) -> Path:
        return RUN_ROOT / self.netns_name(name)

    def host_ip(self, i: int) -> str:
        return f"{self.subnet_prefix}.{10 + i}"

    # lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> list[DockerHost]:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> list[DockerHost]:
        """Bring the network up (unless `start_network()` already did) and start every dockerd in parallel."""
        t0 = time.monotonic()
        self.start_network()
        try:
            with ThreadPoolExecutor(max_workers=min(8, len(self.names))) as pool:
                self.hosts = list(pool.map(self._start_dockerd, range(len(self.names)), self.names))
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        log.info("docker host lab %s: %d hosts up in %.1f s", self.bridge, len(self.hosts), self.start_seconds)
        return self.hosts

    def start_network(self) -> None:
        """Bridge (PREFIX.1/24) in the root namespace plus one namespace + veth pair per host.

        Call it before `start()` when something must listen on the bridge IP before the engines
        start (a registry the hosts pull from: add it to `insecure_registries` in between).
        Leftovers of a crashed earlier run of the same lab are removed first.
        """
        if self._network_up:
            return
        problems = missing_prerequisites()
        if problems:
            raise LabError("cannot start the Docker host lab: " + "; ".join(problems))
        self._cleanup_leftovers()
        self._chains_before = _iptables_chains()
        try:
            self._bring_up_network()
        except BaseException:
            self.stop()
            raise
        self._network_up = True

    def _bring_up_network(self) -> None:
        if not _link_exists(self.bridge):
            _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "replace", f"{self.bridge_ip}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for i, name in enumerate(self.names):
            ns = self.netns_name(name)
            veth = self._veth(i)
            if not (NETNS_DIR / ns).exists():
                _run("ip", "netns", "add", ns)
            if not _link_exists(veth):
                _run("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
                _run("ip", "link", "set", f"{veth}p", "netns", ns)
                _run("ip", "-n", ns, "link", "set", f"{veth}p", "name", "eth0")
            _run("ip", "link", "set", veth, "master", self.bridge)
            _run("ip", "link", "set", veth, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "addr", "replace", f"{self.host_ip(i)}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "route", "replace", "default", "via", self.bridge_ip)

    def _start_dockerd(self, i: int, name: str) -> DockerHost:
        ns = self.netns_name(name)
        ip = self.host_ip(i)
        run_dir = self._run_dir(name)
        exec_root = run_dir / "x"
        sock = run_dir / "docker.sock"
        pidfile = run_dir / "dockerd.pid"
        host_dir = self.workdir / "hosts" / name
        data_root = host_dir / "data"
        log_path = host_dir / "dockerd.log"
        config = host_dir / "daemon.json"
        for d in (exec_root, data_root):
            d.mkdir(parents=True, exist_ok=True)
        # Our own (empty) config file: never read the machine's /etc/docker/daemon.json.
        config.write_text(json.dumps({}))
        cmd = ["nsenter", f"--net={NETNS_DIR / ns}", "dockerd",
               "--config-file", str(config),
               "--data-root", str(data_root), "--exec-root", str(exec_root),
               "--pidfile", str(pidfile),
               "-H", f"unix://{sock}", "-H", f"tcp://{ip}:2375", "--tls=false",
               # distinct default-bridge range per host, so addresses never repeat across hosts
               "--bip", f"172.31.{i % 250}.1/24"]
        for reg in self.insecure_registries:
            cmd += ["--insecure-registry", reg]
        with open(log_path, "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        host = DockerHost(name=name, ip=ip, engine_url=f"tcp://{ip}:2375", socket=str(sock), pid=proc.pid,
                          netns=ns, data_root=str(data_root), log_path=str(log_path))
        self._popen[name] = proc
        deadline = time.monotonic() + self.ping_timeout_s
        url = f"http://{ip}:2375/_ping"
        while True:
            if _ping(url):
                return host
            if proc.poll() is not None:
                raise LabError(f"dockerd for host {name} exited with {proc.returncode}; log tail:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise LabError(f"dockerd for host {name} did not answer {url} within {self.ping_timeout_s:.0f} s; "
                               f"log tail:\n{_tail(log_path)}")
            time.sleep(0.1)

    def stop_engine(self, name: str) -> None:
        """Stop one host's dockerd (SIGTERM, as a host going down would); its namespace, address and
        data stay, so `start_engine` brings the same host back."""
        host = next(h for h in self.hosts if h.name == name)
        _stop_pid(host.pid)
        proc = self._popen.pop(name, None)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def start_engine(self, name: str) -> DockerHost:
        """Start one host's dockerd again (after `stop_engine`), with the same data-root and socket."""
        i = self.names.index(name)
        host = self._start_dockerd(i, name)
        self.hosts = [host if h.name == name else h for h in self.hosts]
        return host

    def stop(self) -> None:
        """Stop every dockerd (by pid), then delete namespaces, veths and the bridge. Safe to call twice.

        Containers are killed through each engine first: a lab is throwaway, and dockerd would
        otherwise give every container that ignores SIGTERM (busybox httpd as pid 1) 10 s.
        """
        if self.hosts:
            with ThreadPoolExecutor(max_workers=min(8, len(self.hosts))) as pool:
                list(pool.map(lambda h: _kill_containers(h.ip), self.hosts))
        pids: set[int] = {h.pid for h in self.hosts}
        for name in self.names:
            pid = _read_pid(self._run_dir(name) / "dockerd.pid")
            if pid:
                pids.add(pid)
        for proc in self._popen.values():
            pids.add(proc.pid)
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(pids)))) as pool:
            list(pool.map(_stop_pid, sorted(pids)))
        for proc in self._popen.values():
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self._popen = {}
        # Whatever still runs inside our namespaces (containers of a dockerd that had to be killed).
        leftovers = [pid for name in self.names if (NETNS_DIR / self.netns_name(name)).exists()
                     for pid in _pids_in_netns(self.netns_name(name))]
        if leftovers:
            log.warning("stopping %d leftover process(es) in the lab namespaces", len(leftovers))
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda p: _stop_pid(p, timeout_s=5), leftovers))
        self._delete_network()
        self._network_up = False
        self.hosts = []
        for name in self.names:  # image layers etc.; the dockerd logs stay for post-mortems
            shutil.rmtree(self.workdir / "hosts" / name / "data", ignore_errors=True)
        if self._chains_before:
            new = _iptables_chains() - self._chains_before
            self.leftover_root_chains = sorted(c for c in new if "DOCKER" in c or "CNI" in c)
            if self.leftover_root_chains:
                log.warning("root namespace has new chains after the lab stopped: %s", self.leftover_root_chains)

    # cleanup ------------------------------------------------------------------------------
    def _cleanup_leftovers(self) -> None:
        """Remove what a crashed earlier run of a lab with the same bridge/prefix/names left behind."""
        for i, name in enumerate(self.names):
            pid = _read_pid(self._run_dir(name) / "dockerd.pid")
            if pid and _pid_alive(pid):
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    cmdline = ""
                if "dockerd" in cmdline and str(self._run_dir(name)) in cmdline:
                    log.warning("stopping leftover dockerd %s of host %s", pid, name)
                    _kill_containers(self.host_ip(i))
                    _stop_pid(pid)
            ns = self.netns_name(name)
            if (NETNS_DIR / ns).exists():
                # leftover processes of a lab namespace (dockerd, containerd-shims, containers)
                for pid in _pids_in_netns(ns):
                    _stop_pid(pid, timeout_s=5)
        self._delete_network()

    def _delete_network(self) -> None:
        for i, name in enumerate(self.names):
            veth = self._veth(i)
            if _link_exists(veth):
                _run("ip", "link", "del", veth, check=False)
            ns = self.netns_name(name)
            if (NETNS_DIR / ns).exists():
                _run("ip", "netns", "del", ns, check=False)
            _unmount_below(self.workdir / "hosts" / name)
            run_dir = self._run_dir(name)
            if run_dir.exists():
                _unmount_below(run_dir)
                shutil.rmtree(run_dir, ignore_errors=True)
        if _link_exists(self.bridge):
            _run("ip", "link", "del", self.bridge, check=False)
        try:
            RUN_ROOT.rmdir()  # only when no other lab uses it
        except OSError:
            pass


def _unmount_below(path: Path) -> None:
    """Unmount anything a killed dockerd/containerd left mounted under `path` (deepest first)."""
    prefix = str(path).rstrip("/") + "/"
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for mnt in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        _run("umount", "-l", mnt, check=False)
