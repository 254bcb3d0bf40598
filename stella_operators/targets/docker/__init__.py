"""Target type `docker`: containers on a Docker Engine host, through the Docker provider's client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stella_operators.targets.registry import NoSettings, TargetType

if TYPE_CHECKING:
    from stella_operators.estate.models import TargetConfig
    from stella_operators.targets.contract import Target


def _build(target: TargetConfig, settings: Any) -> Target:
    from stella_operators.hooks.docker_engine import DockerEngineHook
    from stella_operators.hooks.env_from import resolve_env_from
    from stella_operators.targets.docker.target import DockerTarget

    return DockerTarget(target.name, DockerEngineHook(target.connection).get_conn(), resolve_env=resolve_env_from)


TARGET_TYPE = TargetType(
    name="docker",
    summary="containers on a Docker Engine host (unix socket or tcp, TLS optional): ports, networks, "
            "volumes, env from Airflow Connections/Variables, restart, limits, init/migration first",
    tested_against="real dockerd hosts, each in its own network namespace",
    settings=NoSettings,
    build=_build,
)
