"""`compose.stella.lock.yml`: the compose file a `compose` target runs, rendered from the plan.

    render_service(spec, sticker, env_file=...)  ComponentSpec -> one compose service (the ONE mapping)
    render_lock(...)                             services + `x-stella` block -> file text with its checksum
    read_lock(text)                              parse + verify the checksum -> LockFile (LockFileError if not)

What the file holds:
- every image as `repository@sha256:...`; the tag only as a comment on that line;
- the sticker as `stella.*` labels on every service (`sticker_labels`, plus `stella.component` and
  `stella.digest`), so `docker inspect` on the host shows what was deployed;
- `x-stella`: app, environment, target, release / deployment / promotion ids and `checksum`;
- never an env value: each service with env gets `env_file: [{path: env/<deployment>/<service>.env,
  format: raw}]`, written beside the lock file with mode 0600 in a 0700 folder (target.py). `raw`:
  compose reads the values verbatim (no quotes, no `${...}` interpolation).

Checksum: `sha256:` + hex SHA-256 of the file's UTF-8 bytes in which the one line
`  checksum: "sha256:<64 hex>"` (inside `x-stella`) is replaced by `  checksum: ""`. Verify by hand:

    sed 's/^  checksum: .*/  checksum: ""/' compose.stella.lock.yml | sha256sum

Every string written into the file is compose-escaped (`$` -> `$$`) by render_service, so compose
never interpolates a value; the emitter below only quotes (JSON-style double quotes are valid YAML).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from stella_operators.targets.contract import ComponentSpec, HealthCheck, VersionSticker, sticker_labels

LOCK_FILE = "compose.stella.lock.yml"
PREVIOUS_LOCK_FILE = "compose.stella.lock.previous.yml"
FAILED_LOCK_FILE = "compose.stella.lock.failed.yml"  # the last rolled-back lock file, kept for a post-mortem
ENV_DIR = "env"
LABEL_COMPONENT = "stella.component"
LABEL_DIGEST = "stella.digest"
DEFAULT_RESTART = "unless-stopped"  # as the docker target: a host reboot brings the release back

_CHECKSUM_LINE = re.compile(r'^  checksum: "(sha256:[0-9a-f]{64})"$', re.MULTILINE)
_BLANK_LINE = '  checksum: ""'
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}
_TAG_SAFE = re.compile(r"[^A-Za-z0-9_.+-]")


class LockFileError(ValueError):
    """A lock file that cannot be trusted: unreadable, not ours, or its checksum does not match."""


@dataclass(frozen=True)
class LockFile:
    text: str
    name: str                       # compose project name (top-level `name:`)
    services: dict[str, dict[str, Any]]
    stella: dict[str, Any]          # the `x-stella` block, checksum included

    @property
    def deployment_id(self) -> str:
        return str(self.stella.get("deployment_id", ""))

    @property
    def checksum(self) -> str:
        return str(self.stella["checksum"])

    def images(self) -> dict[str, str]:
        return {name: str(svc.get("image", "")) for name, svc in self.services.items()}

    def env_files(self) -> set[str]:
        """Paths (relative to the project folder) of the env files the services read."""
        found = set()
        for svc in self.services.values():
            for entry in svc.get("env_file") or []:
                found.add(str(entry["path"] if isinstance(entry, dict) else entry))
        return found


def compose_escape(value: str) -> str:
    """A literal string for a compose file: compose interpolates `$VAR`; `$$` is a literal `$`."""
    return value.replace("$", "$$")


def _duration(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def compose_healthcheck(hc: HealthCheck) -> dict[str, Any]:
    """HealthCheck -> compose `healthcheck` (the docker target's rule: a bare command runs as CMD)."""
    test = [compose_escape(a) for a in hc.command]
    if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        test = ["CMD", *test]
    return {"test": test, "interval": _duration(hc.interval_s), "timeout": _duration(hc.timeout_s),
            "retries": int(hc.retries), "start_period": _duration(hc.start_period_s)}


def render_service(spec: ComponentSpec, sticker: VersionSticker, *, env_file: str | None) -> dict[str, Any]:
    """The one mapping ComponentSpec -> compose service (targets/runtime.py names the fields after
    compose's long syntax): image by digest, command, env file, health check, restart, ports,
    networks with aliases, volumes, resource limits; every string compose-escaped. `role`
    init/migration and `env_from` are refused for compose targets at estate load (not yet)."""
    comp = spec.component
    service: dict[str, Any] = {"image": comp.ref}
    if spec.command is not None:
        service["command"] = [compose_escape(a) for a in spec.command]
    if env_file is not None:
        service["env_file"] = [{"path": compose_escape(env_file), "format": "raw"}]
    if spec.health is not None:
        service["healthcheck"] = compose_healthcheck(spec.health)
    service["restart"] = spec.restart or DEFAULT_RESTART
    if spec.ports:
        service["ports"] = [{"target": p.target, "published": str(p.published), "protocol": p.protocol,
                             **({"host_ip": p.host_ip} if p.host_ip else {})} for p in spec.ports]
    if spec.networks:
        service["networks"] = {name: ({"aliases": list(att.aliases)} if att.aliases else None)
                               for name, att in sorted(spec.networks.items())}
    if spec.volumes:
        service["volumes"] = [{"type": v.type, "source": compose_escape(v.source), "target": compose_escape(v.target),
                               **({"read_only": True} if v.read_only else {})} for v in spec.volumes]
    if spec.limits is not None:
        limits = {k: v for k, v in (("memory", spec.limits.memory),
                                    ("cpus", None if spec.limits.cpus is None else str(spec.limits.cpus)),
                                    ("pids", spec.limits.pids)) if v is not None}
        if limits:
            service["deploy"] = {"resources": {"limits": limits}}
    labels = {**{k: str(v) for k, v in sticker_labels(sticker).items()},
              LABEL_COMPONENT: comp.name, LABEL_DIGEST: comp.digest}
    service["labels"] = {k: compose_escape(v) for k, v in labels.items()}
    return service


def env_file_text(env: Mapping[str, str], where: str) -> str:
    """`KEY=value` lines for an env_file of format raw; a value raw lines cannot carry is refused
    (the message names the variable, never its value)."""
    lines = []
    for key, value in sorted(env.items()):
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"{where}: env var {key} holds a line break or NUL, which an env file cannot carry")
        lines.append(f"{key}={value}")
    return "".join(line + "\n" for line in lines)


def stella_block(sticker: VersionSticker) -> dict[str, Any]:
    return {"app": sticker.app, "environment": sticker.environment, "target": sticker.target,
            "release_id": sticker.release_id, "release_name": sticker.release_name,
            "content_hash": sticker.content_hash, "deployment_id": sticker.deployment_id,
            "promotion_id": sticker.promotion_id, "deployed_at": sticker.deployed_at}


def render_lock(project: str, services: Mapping[str, dict[str, Any]], stella: Mapping[str, Any],
                tags: Mapping[str, str | None]) -> str:
    """The lock file text, checksum included. `tags`: service -> tag, written as a comment only."""
    def comment(path: tuple[str, ...]) -> str | None:
        if len(path) == 3 and path[0] == "services" and path[2] == "image":
            tag = tags.get(path[1])
            return f"tag {_TAG_SAFE.sub('_', tag)}" if tag else None
        return None

    body: dict[str, Any] = {"name": project, "services": dict(services)}
    # Networks and named volumes keep the estate's own names on the host (as the docker target does),
    # not compose's `<project>_<name>`: `name:` pins them.
    networks = sorted({n for svc in services.values() for n in (svc.get("networks") or {})})
    volumes = sorted({v["source"] for svc in services.values() for v in svc.get("volumes", [])
                      if v["type"] == "volume"})
    if networks:
        body["networks"] = {n: {"name": n} for n in networks}
    if volumes:
        body["volumes"] = {v: {"name": v} for v in volumes}
    body["x-stella"] = {**{k: v for k, v in stella.items() if k != "checksum"}, "checksum": ""}
    text = ("# compose.stella.lock.yml: written by stella-operators at each deployment; do not edit.\n"
            "# Images are pinned by digest (the tag is only a comment). x-stella.checksum = sha256 of this\n"
            "# file with the checksum value blanked:\n"
            "#   sed 's/^  checksum: .*/  checksum: \"\"/' compose.stella.lock.yml | sha256sum\n"
            + emit_yaml(body, comment))
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text.replace(_BLANK_LINE + "\n", f'  checksum: "{digest}"\n', 1)


def checksum_of(text: str) -> str:
    """The checksum the file's own `x-stella.checksum` must equal (see the module docstring)."""
    found = _CHECKSUM_LINE.findall(text)
    if len(found) != 1:
        raise LockFileError(f"expected exactly one x-stella checksum line, found {len(found)}")
    blanked = _CHECKSUM_LINE.sub(_BLANK_LINE, text)
    return "sha256:" + hashlib.sha256(blanked.encode()).hexdigest()


def read_lock(text: str, *, source: str = LOCK_FILE) -> LockFile:
    """Parse and verify a lock file; LockFileError (naming `source`) when it cannot be trusted."""
    try:
        expected = checksum_of(text)
        data = yaml.safe_load(text)
    except (LockFileError, yaml.YAMLError) as exc:
        raise LockFileError(f"{source}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("x-stella"), dict) \
            or not isinstance(data.get("services"), dict):
        raise LockFileError(f"{source}: not a stella lock file (no services or x-stella block)")
    stella = data["x-stella"]
    if stella.get("checksum") != expected:
        raise LockFileError(f"{source}: checksum mismatch: the file says {stella.get('checksum')}, its content "
                            f"hashes to {expected} (changed by hand?)")
    return LockFile(text=text, name=str(data.get("name", "")), services=data["services"], stella=stella)


# A minimal YAML emitter: block mappings, flow lists of scalars, block lists of mappings; every
# scalar JSON-quoted (a JSON string is a YAML double-quoted scalar) unless it is a plain key.
def emit_yaml(data: Mapping[str, Any], comment: Callable[[tuple[str, ...]], str | None] | None = None) -> str:
    lines: list[str] = []
    _emit_mapping(data, 0, (), lines, comment or (lambda _p: None))
    return "".join(line + "\n" for line in lines)


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS else json.dumps(key)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(str(value))


def _emit_mapping(data: Mapping[str, Any], indent: int, path: tuple[str, ...], lines: list[str],
                  comment: Callable[[tuple[str, ...]], str | None]) -> None:
    pad = " " * indent
    for key, value in data.items():
        here = (*path, str(key))
        if isinstance(value, Mapping):
            if not value:
                lines.append(f"{pad}{_key(str(key))}: {{}}")
                continue
            lines.append(f"{pad}{_key(str(key))}:")
            _emit_mapping(value, indent + 2, here, lines, comment)
        elif isinstance(value, list) and any(isinstance(v, Mapping) for v in value):
            lines.append(f"{pad}{_key(str(key))}:")
            for item in value:
                if not isinstance(item, Mapping):
                    raise TypeError(f"{'.'.join(here)}: a list mixes mappings and scalars")
                sub: list[str] = []
                _emit_mapping(item, indent + 4, here, sub, comment)
                sub[0] = f"{pad}  - " + sub[0].lstrip()
                lines.extend(sub)
        elif isinstance(value, list):
            lines.append(f"{pad}{_key(str(key))}: [{', '.join(_scalar(v) for v in value)}]")
        else:
            note = comment(here)
            lines.append(f"{pad}{_key(str(key))}: {_scalar(value)}" + (f"  # {note}" if note else ""))
