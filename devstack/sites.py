"""A remote site the control plane cannot reach, with a gateway namespace for its Edge worker.

    root namespace (control plane): bridge CONTROL.1/24 -- API server, registry, scheduler
    netns <gw>:  eth0 = CONTROL.10 (on the control bridge), eth1 = SITE.1 (on the site bridge),
                 forwards and masquerades the site's traffic (so site hosts can pull images)
    netns <h>:   eth0 = SITE.10.. (on the site bridge), dockerd, default route via SITE.1

The site bridge has no address in the root namespace once the site is up and the site's subnet
is an `unreachable` route there, so nothing on the control plane can open a connection to a site
host: only a process in the gateway namespace (the
site's Edge worker) can. Every host's dockerd is still reachable on its unix socket (namespaces
share the filesystem): that is how tests look at a site host without the network.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devstack.hosts import NETNS_DIR, DockerHost, DockerHostLab, LabError
from devstack.images import build_web_image
from devstack.registry import RegistryServer, start_registry

REPOSITORY = "demo/web"


def _ip(*args: str) -> None:
    out = subprocess.run(args, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise LabError(f"{' '.join(args)} failed: {out.stderr.strip()}")


@dataclass
class RemoteSiteLab:
    workdir: Path
    hosts: list[str] = field(default_factory=lambda: ["plant-1"])
    control_prefix: str = "10.206.0"
    control_bridge: str = "stella-br6"
    site_prefix: str = "10.207.0"
    site_bridge: str = "stella-br7"
    registry_port: int = 5000
    registry: RegistryServer | None = None
    site_hosts: dict[str, DockerHost] = field(default_factory=dict)
    _control: DockerHostLab | None = None
    _site: DockerHostLab | None = None

    @property
    def control_ip(self) -> str:
        return f"{self.control_prefix}.1"

    @property
    def gateway_netns(self) -> str:
        assert self._control is not None
        return self._control.netns_name("gw")

    @property
    def registry_host(self) -> str:
        return f"{self.control_ip}:{self.registry_port}"

    @property
    def repository(self) -> str:
        return f"{self.registry_host}/{REPOSITORY}"

    def start(self) -> RemoteSiteLab:
        wd = Path(self.workdir)
        self._control = DockerHostLab(wd / "control", ["gw"], subnet_prefix=self.control_prefix,
                                      bridge=self.control_bridge)
        self._site = DockerHostLab(wd / "site", self.hosts, subnet_prefix=self.site_prefix,
                                   bridge=self.site_bridge, insecure_registries=[self.registry_host])
        try:
            self._control.start_network()
            self.registry = start_registry(wd / "registry", host=self.control_ip, port=self.registry_port)
            self.site_hosts = {h.name: h for h in self._site.start()}
            self._cut_off_site()
        except BaseException:
            self.stop()
            raise
        return self

    def _cut_off_site(self) -> None:
        """Hand the site's gateway address to the gateway namespace; the root namespace keeps none."""
        assert self._site is not None
        gw, veth = self.gateway_netns, f"sv{self._site.tag}gw"
        _ip("ip", "addr", "del", f"{self.site_prefix}.1/24", "dev", self.site_bridge)
        # Without a route the root namespace would send site traffic to the machine's default
        # gateway (which may accept any connection): make the site explicitly unreachable.
        _ip("ip", "route", "replace", "unreachable", f"{self.site_prefix}.0/24")
        _ip("ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _ip("ip", "link", "set", f"{veth}p", "netns", gw)
        _ip("ip", "-n", gw, "link", "set", f"{veth}p", "name", "eth1")
        _ip("ip", "-n", gw, "addr", "add", f"{self.site_prefix}.1/24", "dev", "eth1")
        _ip("ip", "-n", gw, "link", "set", "eth1", "up")
        _ip("ip", "link", "set", veth, "master", self.site_bridge)
        _ip("ip", "link", "set", veth, "up")
        _ip("ip", "netns", "exec", gw, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        _ip("ip", "netns", "exec", gw, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s",
            f"{self.site_prefix}.0/24", "-o", "eth0", "-j", "MASQUERADE")

    def in_gateway(self, *cmd: str) -> list[str]:
        """A command line that runs `cmd` in the gateway namespace (where the site's Edge worker runs)."""
        return ["nsenter", f"--net={NETNS_DIR / self.gateway_netns}", *cmd]

    def push_web(self, tag: str) -> str:
        return build_web_image(self.registry_host, REPOSITORY, tag, workdir=Path(self.workdir) / "images", version=tag)

    def stop(self) -> None:
        if self._site is not None:
            # Give the site back to the root namespace first: the lab stops its hosts' containers
            # through their engines' tcp addresses.
            veth = f"sv{self._site.tag}gw"
            subprocess.run(["ip", "link", "del", veth], capture_output=True, check=False)
            subprocess.run(["ip", "route", "del", "unreachable", f"{self.site_prefix}.0/24"], capture_output=True,
                           check=False)
            subprocess.run(["ip", "addr", "replace", f"{self.site_prefix}.1/24", "dev", self.site_bridge],
                           capture_output=True, check=False)
            self._site.stop()   # hosts first: their dockerds run in the site namespaces
            self._site = None
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self._control is not None:
            self._control.stop()  # deletes the gateway namespace, and with it the veth into the site
            self._control = None
