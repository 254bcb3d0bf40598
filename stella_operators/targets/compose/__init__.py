"""Target type `compose`: a Docker Compose v2 project on a host reached over SSH.

Estate example (the Connection is an Airflow `ssh` Connection: host, login, key, and the host's
public key in extra `host_key`; host keys are always verified):

    - name: web-1
      type: compose
      connection: ssh_web_1
      settings:
        project: shop                       # compose project name (default: the app's name)
        project_dir: /srv/stella/shop        # lock files and env files (default /srv/stella/<project>)
        docker_host: unix:///run/docker.sock # the host's docker endpoint, DOCKER_HOST of every command
        extra_files: [/srv/ops/shop.override.yml]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from stella_operators.targets.registry import TargetType

if TYPE_CHECKING:
    from stella_operators.estate.models import TargetConfig
    from stella_operators.targets.contract import Target

AbsPath = Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9_.@+/-]*$", max_length=255)]
ProjectName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
DockerHost = Annotated[str, StringConstraints(pattern=r"^(unix|tcp|ssh|fd)://[A-Za-z0-9_.@:/\[\]-]+$",
                                              max_length=255)]


class ComposeSettings(BaseModel):
    """The `settings:` block of a `compose` target; every key has an effect on the host."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    project: ProjectName | None = Field(
        None, description="compose project name (`docker compose -p`); default: the app's name")
    project_dir: AbsPath | None = Field(
        None, description="folder on the host for compose.stella.lock.yml, the previous one and the env "
                          "files (0600); default /srv/stella/<project>")
    docker_host: DockerHost | None = Field(
        None, description="the host's docker endpoint, set as DOCKER_HOST for every docker command run there "
                          "(unix:///path/docker.sock, tcp://..., ssh://...); default: the CLI's own default")
    docker_cli: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./-]{1,255}$")] = Field(
        "docker", description="the docker CLI on the host (with the compose v2 plugin)")
    extra_files: list[AbsPath] = Field(
        default_factory=list, description="compose files already on the host, merged after the lock file "
                                          "(`-f`), e.g. networks or logging owned by the host's operators; "
                                          "the running digests are still verified")
    command_timeout_s: float = Field(300, gt=0, le=3600, description="limit of one docker command on the host")
    connect_attempts: int = Field(3, ge=1, le=10, description="SSH connection attempts (the SSH hook's retries)")


def _build(target: TargetConfig, settings: Any) -> Target:
    from stella_operators.hooks.ssh_connect import ssh_connector
    from stella_operators.targets.compose.remote import SshRemote
    from stella_operators.targets.compose.target import ComposeTarget

    where, connect = ssh_connector(target.connection, connect_attempts=settings.connect_attempts)
    return ComposeTarget(target.name, SshRemote(where, connect), settings)


TARGET_TYPE = TargetType(
    name="compose",
    summary="a Docker Compose v2 project on a host over SSH (digest-pinned lock file, previous one kept)",
    tested_against="real sshd + dockerd hosts, each in its own network namespace; compose v2.40 CLI",
    settings=ComposeSettings,
    build=_build,
    unsupported=("env_from", "role"),  # ports, networks, volumes, restart, limits: rendered into the lock file
)
