"""Compose hosts for tests: each a network namespace with its own address running a dockerd AND an
sshd, plus a registry on the lab bridge the engines pull from.

    lab = ComposeLab(workdir, ["c1", "c2", "c3"], subnet_prefix="10.203.0", bridge="stella-br3").start()
    lab.connection_env()       # AIRFLOW_CONN_* (ssh: root, the lab's client key, extra host_key)
    lab.settings("c1")         # compose target settings: docker_host = that host's dockerd socket
    lab.stop_engine("c2"); lab.start_engine("c2"); lab.stop_sshd("c2"); lab.start_sshd("c2")
    lab.stop()

Namespaces share the filesystem, so a command run over SSH on host c1 reaches c1's dockerd through
its unix socket (DockerHost.socket), given as the target's `docker_host` setting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from devstack.hosts import DockerHost, DockerHostLab
from devstack.images import build_web_image
from devstack.registry import RegistryServer, free_port, start_registry
from devstack.sshd import SshServer, client_key


def conn_id_for(host: str) -> str:
    return "stella_ssh_" + host.replace("-", "_")


@dataclass
class ComposeLab:
    workdir: Path
    names: list[str]
    subnet_prefix: str = "10.203.0"
    bridge: str = "stella-br3"
    registry: RegistryServer | None = None
    hosts: dict[str, DockerHost] = field(default_factory=dict)
    sshd: dict[str, SshServer] = field(default_factory=dict)
    _lab: DockerHostLab | None = None

    @property
    def key(self) -> Path:
        return client_key(Path(self.workdir) / "client")

    def start(self) -> ComposeLab:
        self._lab = DockerHostLab(Path(self.workdir) / "hosts", self.names, subnet_prefix=self.subnet_prefix,
                                  bridge=self.bridge)
        try:
            self._lab.start_network()
            bridge_ip = self._lab.bridge_ip
            self.registry = start_registry(Path(self.workdir) / "registry", host=bridge_ip, port=free_port(bridge_ip))
            self._lab.insecure_registries = [self.registry.host_port]
            self.hosts = {h.name: h for h in self._lab.start()}
            for name, host in self.hosts.items():
                self.sshd[name] = SshServer(Path(self.workdir) / "sshd" / name, listen=host.ip, port=22,
                                            netns=host.netns, authorized_keys=[self.key.with_suffix(".pub")])
                self.sshd[name].start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in self.sshd.values():
            server.stop()
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self._lab is not None:
            self._lab.stop()
            self._lab = None

    # hosts dying and coming back ----------------------------------------------------------------
    def stop_engine(self, name: str) -> None:
        assert self._lab is not None
        self._lab.stop_engine(name)

    def start_engine(self, name: str) -> None:
        assert self._lab is not None
        self.hosts[name] = self._lab.start_engine(name)

    def stop_sshd(self, name: str) -> None:
        self.sshd[name].stop()

    def start_sshd(self, name: str) -> None:
        self.sshd[name].start()

    # what an estate needs -----------------------------------------------------------------------
    def push_web(self, repository: str, tag: str, *, healthy: bool = True) -> str:
        """Build and push a version of the demo web image (busybox httpd); return its digest."""
        assert self.registry is not None
        return build_web_image(self.registry.host_port, repository, tag, workdir=Path(self.workdir) / "images",
                               version=tag, healthy=healthy)

    def connection(self, name: str, *, host_key: str | None = None) -> dict[str, object]:
        """The Airflow `ssh` Connection of one host (host key pinned in extra `host_key`)."""
        server = self.sshd[name]
        key_type, key_data = server.host_key_line().split()[1:3]
        return {"conn_type": "ssh", "host": self.hosts[name].ip, "port": 22, "login": "root",
                "extra": {"key_file": str(self.key), "host_key": host_key or f"{key_type} {key_data}"}}

    def connection_env(self) -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id_for(n).upper()}": json.dumps(self.connection(n)) for n in self.hosts}

    def settings(self, name: str, **extra: object) -> dict[str, object]:
        """Compose target settings for one host: its docker endpoint is its own dockerd's socket."""
        return {"docker_host": f"unix://{self.hosts[name].socket}", **extra}
