"""Provider metadata for Airflow's providers manager (entry point `apache_airflow_provider`).

Advertises only what is built: the target types come from the same table the package registers
as entry points (and falls back to when not pip-installed)."""

from stella_operators import __version__
from stella_operators.entry_points import BUILT_IN


def get_provider_info() -> dict:
    targets = ", ".join(sorted(BUILT_IN["stella_operators.targets"]))
    return {
        "package-name": "stella-operators",
        "name": "Stella Operators",
        "description": "Release orchestration for container estates that are not Kubernetes: digest-pinned "
                       "releases, promotions through gates and approvals, deployments with rollback, signed "
                       f"evidence. Target types built in: {targets} (list installed ones with "
                       "`stella target-types`).",
        "versions": [__version__],
        "connection-types": [
            {"hook-class-name": "stella_operators.hooks.docker_engine.DockerEngineHook",
             "connection-type": "stella_docker_engine"},
            {"hook-class-name": "stella_operators.hooks.nomad.NomadHook", "connection-type": "stella_nomad"},
            {"hook-class-name": "stella_operators.hooks.winrm.WinrmHook", "connection-type": "stella_winrm"},
            {"hook-class-name": "stella_operators.hooks.metrics.MetricsEndpointHook",
             "connection-type": "stella_metrics"},
        ],
    }
