"""Runtime settings of a component (estate `apps[].components[]` -> ComponentSpec), target-neutral.

Field names follow the Compose file's long syntax so that every setting maps 1:1 onto a compose
service key (what a compose target renders):

    ports[]     {target, published, protocol, host_ip}          -> services.X.ports[] (long syntax)
    networks    {name: {aliases: [...]}} (or a list of names)   -> services.X.networks (+ top-level networks)
    volumes[]   {type: volume|bind, source, target, read_only}  -> services.X.volumes[] (long syntax)
    restart     no | always | on-failure | unless-stopped       -> services.X.restart
    limits      {memory, cpus, pids}                            -> services.X.deploy.resources.limits
    env_from    {VAR: {connection, field} | {variable}}         -> services.X.environment (resolved at deploy)

`env_from` names where a value lives (an Airflow Connection or Variable), never the value: the
estate file, the plan, the sticker, labels and evidence only ever hold the reference. A target
resolves it at deploy time through the resolver the Airflow layer gives it (hooks/env_from.py).
Plain pydantic, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

_ConnId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$")]
_VarKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$")]
NetworkName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")]
Alias = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")]
VolumeName = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

# Connection fields a value may come from; `extra.KEY` reads one key of the JSON extra.
CONNECTION_FIELDS = ("password", "login", "host", "port", "schema", "uri")
_EXTRA_FIELD = re.compile(r"^extra\.[A-Za-z0-9_.-]{1,128}$")
_MEMORY = re.compile(r"^([0-9]+)([bkmg]?)$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortMapping(_Strict):
    """A container port published on the host (`docker run -p host_ip:published:target/protocol`)."""

    target: int = Field(ge=1, le=65535, description="port inside the container")
    published: int = Field(ge=1, le=65535, description="port on the host (must be free on every target)")
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: str | None = Field(None, description="host address to bind; default every address")

    @field_validator("host_ip")
    @classmethod
    def _ip(cls, value: str | None) -> str | None:
        import ipaddress

        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"host_ip must be an IP address such as 127.0.0.1, got {value!r}") from None
        return value


class NetworkAttachment(_Strict):
    aliases: list[Alias] = Field(default_factory=list, description="extra DNS names on this network")


class VolumeMount(_Strict):
    """A named volume (kept across releases) or a bind mount of an absolute host path."""

    type: Literal["volume", "bind"] = "volume"
    source: str = Field(description="volume name (type volume) or absolute host path (type bind)")
    target: str = Field(description="absolute path inside the container")
    read_only: bool = False

    @model_validator(mode="after")
    def _paths(self) -> VolumeMount:
        if not self.target.startswith("/") or "/../" in f"{self.target}/":
            raise ValueError(f"target must be an absolute container path without '..', got {self.target!r}")
        if self.type == "bind":
            if not self.source.startswith("/"):
                raise ValueError(f"a bind mount's source must be an absolute host path, got {self.source!r} "
                                 f"(relative paths depend on where the worker runs); write /srv/... or use "
                                 f"type: volume with a volume name")
            if "/../" in f"{self.source}/" or any(c in self.source for c in ":\n\0"):
                raise ValueError(f"bind mount source {self.source!r} may not contain '..', ':' or control characters")
        elif not re.match(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$", self.source):
            raise ValueError(f"volume name {self.source!r} must match [a-zA-Z0-9][a-zA-Z0-9_.-]* "
                             f"(a host path needs type: bind)")
        return self


class Limits(_Strict):
    """Resource limits; each maps to `docker run --memory / --cpus / --pids-limit`."""

    memory: str | None = Field(None, description="bytes with an optional unit b, k, m, g (e.g. 256m)")
    cpus: float | None = Field(None, gt=0, le=1024, description="CPU share, e.g. 0.5")
    pids: int | None = Field(None, ge=1, le=4_194_304, description="maximum number of processes")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not _MEMORY.match(value):
            raise ValueError(f"memory must be a number with an optional unit b, k, m or g (e.g. 256m), got {value!r}")
        if isinstance(value, str) and memory_bytes(value) < 6 * 1024 * 1024:
            raise ValueError(f"memory {value!r} is below 6m, the least a container runtime accepts")
        return value


def memory_bytes(value: str) -> int:
    m = _MEMORY.match(value)
    if m is None:
        raise ValueError(value)
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


class EnvFrom(_Strict):
    """Where an env value lives: `{connection: ID, field: password}` or `{variable: KEY}`."""

    connection: _ConnId | None = Field(None, description="Airflow Connection id")
    field: str | None = Field(None, description="password | login | host | port | schema | uri | extra.KEY")
    variable: _VarKey | None = Field(None, description="Airflow Variable key")

    @model_validator(mode="after")
    def _one_source(self) -> EnvFrom:
        if (self.connection is None) == (self.variable is None):
            raise ValueError("give exactly one of connection (with field) or variable")
        if self.variable is not None and self.field is not None:
            raise ValueError("field belongs to a connection source; a variable has none")
        if self.connection is not None:
            if self.field is None:
                raise ValueError(f"connection {self.connection!r} needs field: one of "
                                 f"{', '.join(CONNECTION_FIELDS)} or extra.KEY")
            if self.field not in CONNECTION_FIELDS and not _EXTRA_FIELD.match(self.field):
                raise ValueError(f"field {self.field!r} is not one of {', '.join(CONNECTION_FIELDS)} or extra.KEY")
        return self

    def describe(self) -> str:
        """The reference in words (never the value), for messages."""
        if self.variable is not None:
            return f"Airflow Variable {self.variable!r}"
        return f"field {self.field!r} of Airflow Connection {self.connection!r}"


# Resolves a reference to its value at deploy time. Raises any exception when it cannot (its
# message must name the reference, never a value). Given to targets by the Airflow layer.
EnvResolver = Callable[[EnvFrom], str]

Role = Literal["primary", "sidecar", "init", "migration"]
RUN_ONCE_ROLES: tuple[str, ...] = ("init", "migration")
Restart = Literal["no", "always", "on-failure", "unless-stopped"]


class RuntimeSettings(_Strict):
    """The runtime fields shared by an estate Component and a ComponentSpec (see module doc)."""

    role: Role = Field("primary", description="init/migration: run to completion (exit 0) before the others start")
    ports: list[PortMapping] = Field(default_factory=list)
    networks: dict[NetworkName, NetworkAttachment] = Field(
        default_factory=dict, description="user-defined bridge networks (created if missing), with aliases")
    volumes: list[VolumeMount] = Field(default_factory=list)
    restart: Restart | None = Field(None, description="default: unless-stopped; run-once roles: no")
    limits: Limits | None = None
    env_from: dict[EnvName, EnvFrom] = Field(
        default_factory=dict, description="env values read from Airflow Connections/Variables at deploy time")

    @field_validator("networks", mode="before")
    @classmethod
    def _network_list(cls, value: Any) -> Any:
        if isinstance(value, list):  # compose's short form: [front, back]
            return {name: {} for name in value}
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RuntimeSettings:
        if self.role in RUN_ONCE_ROLES:
            if self.ports:
                raise ValueError(f"a {self.role} component runs once and exits: it cannot publish ports")
            if self.restart not in (None, "no"):
                raise ValueError(f"a {self.role} component runs once: restart must be 'no' (got {self.restart!r})")
        seen: dict[tuple[str | None, int, str], int] = {}
        for i, p in enumerate(self.ports):
            key = (p.host_ip, p.published, p.protocol)
            if key in seen:
                raise ValueError(f"ports[{i}] publishes {p.protocol} port {p.published} again (ports[{seen[key]}])")
            seen[key] = i
        targets = [v.target for v in self.volumes]
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise ValueError(f"volumes mount {dup[0]!r} twice")
        return self

    def runtime_fields(self) -> dict[str, Any]:
        """The runtime settings alone (to copy an estate Component's into a ComponentSpec)."""
        return {name: getattr(self, name) for name in RuntimeSettings.model_fields}

    @property
    def run_once(self) -> bool:
        return self.role in RUN_ONCE_ROLES

    def restart_policy(self) -> Restart:
        if self.restart is not None:
            return self.restart
        return "no" if self.run_once else "unless-stopped"
