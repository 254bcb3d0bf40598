"""ComponentSpec -> Docker Engine API container configuration. Pure: no I/O, unit-tested.

    ports     -> ExposedPorts + HostConfig.PortBindings   (`-p host_ip:published:target/protocol`)
    networks  -> HostConfig.NetworkMode (first) + EndpointsConfig aliases; further networks are
                 connected before the container starts (Engine API 1.41 takes one at create)
    volumes   -> HostConfig.Mounts (volume / bind, ReadOnly)
    restart   -> HostConfig.RestartPolicy, set only once the container is healthy (see target.py)
    limits    -> HostConfig.Memory / NanoCpus / PidsLimit
    env_from  -> Env, resolved by the caller; never in labels

A *probe* is the same container without published ports and without network aliases: it is
health checked beside the old container while the old one still holds the host ports.
"""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

from stella_operators.targets.contract import ComponentSpec, HealthCheck, VersionSticker, sticker_labels
from stella_operators.targets.runtime import memory_bytes

STICKER_PATH = "/stella.version.json"
LABEL_APP = "stella.app"
LABEL_COMPONENT = "stella.component"
LABEL_DIGEST = "stella.digest"
LABEL_ROLE = "stella.role"
LABEL_PROBE = "stella.probe"
LABEL_FINGERPRINT = "stella.config.fingerprint"
LABEL_STICKER = "stella.version.json"
LABEL_DEPLOYMENT = "stella.deployment.id"
LABEL_MANAGED_NETWORK = "stella.managed"
_NS = 1_000_000_000


def container_name(app: str, component: str, digest: str) -> str:
    return f"stella-{app}-{component}-{digest.split(':', 1)[-1][:12]}"


def free_name(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... when an old container (stopped, unhealthy) holds it."""
    if name not in taken:
        return name
    suffix = 2
    while f"{name}-{suffix}" in taken:
        suffix += 1
    return f"{name}-{suffix}"


def docker_healthcheck(hc: HealthCheck) -> dict[str, Any]:
    """HealthCheck -> the Engine API `Healthcheck` (durations in nanoseconds)."""
    test = list(hc.command)
    if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        test = ["CMD", *test]
    return {
        "test": test,
        "interval": int(hc.interval_s * _NS),
        "timeout": int(hc.timeout_s * _NS),
        "retries": int(hc.retries),
        "start_period": int(hc.start_period_s * _NS),
    }


def container_labels(spec: ComponentSpec, sticker: VersionSticker, *, probe: bool = False) -> dict[str, str]:
    labels = {k: str(v) for k, v in sticker_labels(sticker).items()}
    labels[LABEL_COMPONENT] = spec.component.name
    labels[LABEL_DIGEST] = spec.component.digest
    labels[LABEL_ROLE] = spec.role
    labels[LABEL_FINGERPRINT] = spec.fingerprint()
    if probe:
        labels[LABEL_PROBE] = "1"
    return labels


def restart_policy(spec: ComponentSpec) -> dict[str, Any]:
    policy: dict[str, Any] = {"Name": spec.restart_policy()}
    if policy["Name"] == "on-failure":
        policy["MaximumRetryCount"] = 0
    return policy


def host_config(spec: ComponentSpec, *, publish: bool) -> dict[str, Any]:
    """The HostConfig to create with. Restart policy `no`: a crash while starting must leave the
    container exited with its exit code; the configured policy is set once it is healthy."""
    hc: dict[str, Any] = {"RestartPolicy": {"Name": "no"}}
    if publish and spec.ports:
        bindings: dict[str, list[dict[str, str]]] = {}
        for p in spec.ports:
            bindings.setdefault(f"{p.target}/{p.protocol}", []).append(
                {"HostIp": p.host_ip or "", "HostPort": str(p.published)})
        hc["PortBindings"] = bindings
    if spec.volumes:
        hc["Mounts"] = [{"Type": v.type, "Source": v.source, "Target": v.target, "ReadOnly": v.read_only}
                        for v in spec.volumes]
    if spec.networks:
        hc["NetworkMode"] = next(iter(spec.networks))
    if spec.limits is not None:
        if spec.limits.memory is not None:
            hc["Memory"] = memory_bytes(spec.limits.memory)
        if spec.limits.cpus is not None:
            hc["NanoCpus"] = int(spec.limits.cpus * _NS)
        if spec.limits.pids is not None:
            hc["PidsLimit"] = spec.limits.pids
    return hc


def endpoint(spec: ComponentSpec, network: str, *, probe: bool) -> dict[str, Any]:
    """EndpointSettings of one network; a probe gets no aliases (it must not take traffic by name)."""
    aliases = [] if probe else list(spec.networks[network].aliases)
    return {"Aliases": aliases} if aliases else {}


def create_kwargs(spec: ComponentSpec, sticker: VersionSticker, *, name: str, env: dict[str, str],
                  probe: bool = False) -> dict[str, Any]:
    """Keyword arguments of `docker.APIClient.create_container` (raw Engine API dicts)."""
    kwargs: dict[str, Any] = {
        "image": spec.component.ref,
        "name": name,
        "command": spec.command,
        "environment": env,
        "labels": container_labels(spec, sticker, probe=probe),
        "healthcheck": docker_healthcheck(spec.health) if spec.health else None,
        "host_config": host_config(spec, publish=not probe),
        "detach": True,
    }
    if spec.ports and not probe:
        kwargs["ports"] = sorted({(p.target, p.protocol) for p in spec.ports})
    if spec.networks:
        first = next(iter(spec.networks))
        kwargs["networking_config"] = {"EndpointsConfig": {first: endpoint(spec, first, probe=probe)}}
    return kwargs


def extra_networks(spec: ComponentSpec) -> list[str]:
    """Networks connected after create (the first one is the container's network mode)."""
    return list(spec.networks)[1:]


def sticker_tar(sticker: VersionSticker) -> bytes:
    data = (sticker.model_dump_json(indent=2) + "\n").encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(STICKER_PATH.lstrip("/"))
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
