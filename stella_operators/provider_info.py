"""Provider metadata for Airflow's providers manager (entry point `apache_airflow_provider`)."""

from stella_operators import __version__


def get_provider_info() -> dict:
    return {
        "package-name": "stella-operators",
        "name": "Stella Operators",
        "description": "Release orchestration (digest-pinned releases, promotions, gates, evidence) "
                       "for Docker, Compose, ECS, Nomad, SSH and WinRM estates.",
        "versions": [__version__],
        "connection-types": [
            {"hook-class-name": "stella_operators.hooks.docker_engine.DockerEngineHook",
             "connection-type": "stella_docker_engine"},
        ],
    }
