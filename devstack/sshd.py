"""Real OpenSSH servers for tests and benchmarks: each with its own config, host key, port,
pid file and authorized key, optionally inside a network namespace of a DockerHostLab.

    server = SshServer(workdir / "h1", listen="10.203.0.10", port=22, netns=lab.netns_name("h1"))
    server.start()        # -> waits until the port answers with an SSH banner
    ...
    server.stop()         # by pid; safe to call twice

`client_key(workdir)` creates (once) an Ed25519 client key pair every server of a lab trusts;
`server.host_key_line()` is the `known_hosts` line of the server (so clients verify host keys).
The login user is root (the machine's tests run as root); sshd runs with UsePAM no, StrictModes no.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from devstack.hosts import NETNS_DIR, LabError, _pid_alive, _read_pid, _stop_pid, _tail


def client_key(workdir: Path) -> Path:
    """Path of an Ed25519 private key (`.pub` beside it), created once under workdir."""
    key = Path(workdir) / "client_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "stella-lab", "-f", str(key)],
                       check=True, capture_output=True)
    return key


@dataclass
class SshServer:
    workdir: Path
    listen: str = "127.0.0.1"
    port: int = 22
    netns: str | None = None            # run inside this network namespace (nsenter --net)
    authorized_keys: list[Path] = field(default_factory=list)  # public key files allowed to log in
    start_timeout_s: float = 15.0
    pid: int | None = None

    @property
    def pidfile(self) -> Path:
        return Path(self.workdir) / "sshd.pid"

    @property
    def log_path(self) -> Path:
        return Path(self.workdir) / "sshd.log"

    @property
    def host_key(self) -> Path:
        return Path(self.workdir) / "ssh_host_ed25519_key"

    def host_key_line(self) -> str:
        """known_hosts line for this server (`[ip]:port key`, or `ip key` on port 22)."""
        pub = (self.host_key.with_suffix(".pub")).read_text().split()
        host = self.listen if self.port == 22 else f"[{self.listen}]:{self.port}"
        return f"{host} {pub[0]} {pub[1]}"

    def start(self) -> SshServer:
        wd = Path(self.workdir)
        wd.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
        if not self.host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key)],
                           check=True, capture_output=True)
        auth = wd / "authorized_keys"
        auth.write_text("".join(Path(k).read_text() for k in self.authorized_keys))
        auth.chmod(0o600)
        config = wd / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress {self.listen}:{self.port}",
            f"HostKey {self.host_key}",
            f"PidFile {self.pidfile}",
            f"AuthorizedKeysFile {auth}",
            "PermitRootLogin prohibit-password",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "Subsystem sftp internal-sftp",
            "MaxStartups 200:30:400",
            "MaxSessions 50",
            "UseDNS no",
            "LogLevel INFO",
            "",
        ]))
        sshd = shutil.which("sshd") or "/usr/sbin/sshd"
        cmd = [sshd, "-D", "-e", "-f", str(config)]
        if self.netns:
            cmd = ["nsenter", f"--net={NETNS_DIR / self.netns}", *cmd]
        with open(self.log_path, "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self.pid = proc.pid
        deadline = time.monotonic() + self.start_timeout_s
        while not self._banner():
            if proc.poll() is not None:
                raise LabError(f"sshd {self.listen}:{self.port} exited with {proc.returncode}; log tail:\n"
                               f"{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"sshd {self.listen}:{self.port} did not answer within {self.start_timeout_s:.0f} s")
            time.sleep(0.05)
        return self

    def _banner(self) -> bool:
        """True when the port answers with an SSH banner (from the root namespace: the lab's bridge
        routes to every namespace's address)."""
        try:
            with socket.create_connection((self.listen, self.port), timeout=1) as s:
                return s.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def stop(self) -> None:
        """Stop the listener and every session it forked (they share its process group)."""
        pid = self.pid or _read_pid(self.pidfile)
        if pid is None:
            return
        try:
            os.killpg(pid, 15)
        except (ProcessLookupError, PermissionError):
            pass
        _stop_pid(pid, timeout_s=10)
        try:
            os.killpg(pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.pid = None
