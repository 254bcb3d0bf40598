"""Settings of an `ssh` target: what a team deploying to a plain Linux host needs to say.

    settings:
      base_dir: /srv/shop                  # releases/<deployment id>/ and the `current` symlink live here
      artifacts:                           # files of the estate folder, uploaded into each release dir
        - {source: deploy/shop-web.service, dest: shop-web.service}
        - {source: deploy/activate.sh, dest: bin/activate, mode: "0755"}
      components:
        web:
          check: [bin/activate, --check, "{image}"]        # optional: before the switch (prepare)
          activate: [bin/activate, "{image}"]             # after the switch (commit), and on rollback
          status: [systemctl, is-active, shop-web]        # facts: exit 0 = healthy
          deactivate: [systemctl, stop, shop-web]         # rollback to "nothing ran before"
      backup_paths: [/etc/systemd/system/shop-web.service]  # saved at prepare, put back on rollback
      command_timeout_s: 60
      known_hosts_file: /etc/stella/known_hosts

Commands are argument lists, never shell strings: each argument is quoted for the remote shell.
Placeholders (`{image}`, `{digest}`, `{tag}`, `{repository}`, `{component}`, `{release_dir}`,
`{base_dir}`, `{deployment_id}`, `{app}`) are filled per component, then quoted; `{{` is a brace.
"""

from __future__ import annotations

import string
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

PLACEHOLDERS = ("image", "digest", "tag", "repository", "component", "release_dir", "base_dir",
                "deployment_id", "app")
STATUS_PLACEHOLDERS = ("component", "base_dir", "app", "release_dir")
# Control characters never reach a remote command line or a path (quoting cannot make a newline
# in a path harmless for every tool on the host).
_NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Arg = Annotated[str, StringConstraints(min_length=0, max_length=4096, pattern=_NO_CONTROL)]
Argv = Annotated[list[Arg], Field(min_length=1, max_length=256)]
AbsPath = Annotated[str, StringConstraints(min_length=2, max_length=1024, pattern=r"^/[^\x00-\x1f\x7f]*$")]


def _check_placeholders(argv: list[str] | None) -> list[str] | None:
    if argv is None:
        return None
    for arg in argv:
        for _, field_name, spec, conv in string.Formatter().parse(arg):
            if field_name is None:
                continue
            if field_name not in PLACEHOLDERS or spec or conv:
                raise ValueError(f"unknown placeholder {{{field_name}}} in {arg!r} "
                                 f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; write {{{{ for a brace)")
    return argv


class ComponentCommands(BaseModel):
    """How one component of the app is switched on this host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    activate: Argv = Field(description="run in the new release dir after `current` points to it; "
                                       "re-run from the previous release dir on rollback")
    check: Argv | None = Field(None, description="run in the new release dir before the switch; "
                                                 "a non-zero exit fails the prepare (nothing switched)")
    status: Argv | None = Field(None, description="run in `current` when facts are read: exit 0 = healthy "
                                                  "(its output is kept in the facts)")
    deactivate: Argv | None = Field(None, description="run when a rollback leaves the component with no "
                                                      "previous release (first deployment failed)")

    _placeholders = field_validator("activate", "check", "status", "deactivate")(_check_placeholders)

    @field_validator("status")
    @classmethod
    def _status_placeholders(cls, v: list[str] | None) -> list[str] | None:
        # status runs in `current` before its release is known: per-release values come from the
        # env file (STELLA_IMAGE, STELLA_DIGEST, ...), not from placeholders
        for arg in v or []:
            for _, name, _, _ in string.Formatter().parse(arg):
                if name and name not in STATUS_PLACEHOLDERS:
                    raise ValueError(f"status may use {', '.join('{' + p + '}' for p in STATUS_PLACEHOLDERS)} "
                                     f"only, not {{{name}}} (read $STELLA_IMAGE etc. from the environment)")
        return v


class Artifact(BaseModel):
    """A file of the estate folder uploaded into every release dir of this target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Annotated[str, StringConstraints(min_length=1, max_length=1024, pattern=_NO_CONTROL)] = Field(
        description="path relative to the estate file's folder (or absolute) on the Airflow worker")
    dest: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=_NO_CONTROL)] = Field(
        description="path inside the release dir (relative, no '..')")
    mode: Annotated[str, StringConstraints(pattern=r"^0?[0-7]{3}$")] = "0644"

    @field_validator("dest")
    @classmethod
    def _relative(cls, v: str) -> str:
        p = PurePosixPath(v)
        if p.is_absolute() or ".." in p.parts or not p.parts or p.parts[0] == ".stella" \
                or v in ("stella.version.json",):
            raise ValueError(f"dest {v!r} must be a relative path inside the release dir without '..' "
                             "(and not stella.version.json or .stella/, which stella writes)")
        return str(p)


class SshSettings(BaseModel):
    """The `settings:` block of a target of type `ssh`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_dir: AbsPath = Field("/srv/stella/{app}", description="absolute; `{app}` is replaced by the app name")
    components: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")], ComponentCommands] = Field(
        min_length=1, description="per component of the app: its activate/check/status/deactivate commands")
    artifacts: list[Artifact] = Field(default_factory=list, max_length=200)
    backup_paths: list[AbsPath] = Field(
        default_factory=list, max_length=100,
        description="files or folders outside the release dir that activate changes: saved (tar) at prepare, "
                    "put back on rollback")
    keep_releases: int = Field(3, ge=2, le=100, description="release dirs kept after a verified deployment "
                                                            "(current and previous at least)")
    command_timeout_s: float = Field(60, gt=0, le=3600, description="per remote command (killed on the host after it)")
    connect_timeout_s: float = Field(10, gt=0, le=300, description="TCP connect + SSH handshake + login")
    known_hosts_file: AbsPath | None = Field(
        None, description="known_hosts file on the worker, used when the Connection has neither extra "
                          "`host_key` nor `known_hosts`; default ~/.ssh/known_hosts")
    insecure_demo: bool = Field(False, description="DEMO ONLY: accept any host key (the Connection's "
                                                   "no_host_key_check is refused without it)")

    @field_validator("base_dir")
    @classmethod
    def _base(cls, v: str) -> str:
        _check_placeholders([v.replace("{app}", "x")])
        if ".." in PurePosixPath(v).parts or v.rstrip("/") in ("", "/"):
            raise ValueError(f"base_dir {v!r} must be an absolute folder below / without '..'")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _dests_unique(self) -> SshSettings:
        dests = [a.dest for a in self.artifacts]
        dupes = sorted({d for d in dests if dests.count(d) > 1})
        if dupes:
            raise ValueError(f"artifacts: dest {', '.join(dupes)} given more than once")
        return self

    def base_for(self, app: str) -> str:
        return self.base_dir.replace("{app}", app)
