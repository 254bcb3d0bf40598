"""Remote sites: tasks that touch an environment's targets run where the targets are.

A target with `site: plant-a` is out of the control plane's reach. Airflow's own Edge workers
(provider apache-airflow-providers-edge3) run at the site, pull their tasks from the API server
over HTTPS and execute them there; the EdgeExecutor hands a task to the workers serving its
`queue`. So the DAG builder gives every task that reads or changes targets (deploy, verify,
rollback, drift) `executor=EdgeExecutor, queue=<site>`; the other steps (request, gates, the
approval wait) stay on the control plane's executor. The Airflow deployment must list the
EdgeExecutor in `[core] executor` (e.g. `LocalExecutor,airflow.providers.edge3.executors.EdgeExecutor`)
and enable `[edge] api_enabled`; otherwise Airflow refuses the DAG naming the missing executor.
"""

from __future__ import annotations

from typing import Any

from stella_operators.estate.models import Environment, environment_site

EDGE_EXECUTOR = "EdgeExecutor"


def site_task_args(env: Environment) -> dict[str, Any]:
    """Operator kwargs that route a task touching `env`'s targets to its site ({} when central)."""
    site = environment_site(env)
    if site is None:
        return {}
    return {"executor": EDGE_EXECUTOR, "queue": site}
