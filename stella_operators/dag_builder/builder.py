"""Build Airflow DAGs from an estate file. Parsing reads the file (and keeps the parsed YAML in
`$STELLA_HOME/cache` for task starts): no network, no ledger."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, Param, get_parsing_context

from stella_operators.estate.loader import load_estate, load_estate_for_app
from stella_operators.estate.models import Estate
from stella_operators.operators.gates import EvaluateGatesOperator
from stella_operators.operators.promotion import (
    DeployReleaseOperator,
    RequestPromotionOperator,
    VerifyPromotionOperator,
)
from stella_operators.operators.release import CreateReleaseOperator
from stella_operators.release.service import NAME_RE
from stella_operators.sensors.approval import ApprovalSensor

START = datetime(2026, 1, 1, tzinfo=UTC)
REF_PATTERN = r"^[A-Za-z0-9_.:/@+-]+$"
# Something that is not white space (JSON Schema patterns search, they are not anchored): a reason
# of blanks would be recorded as blank and shown as "by admin:" and nothing.
REASON_PATTERN = r"\S"


def release_dag_id(app: str) -> str:
    return f"stella_release__{app}"


def promote_dag_id(app: str, env: str) -> str:
    return f"stella_promote__{app}__{env}"


def verified_asset(app: str, env: str) -> Asset:
    """Event: a release of `app` was deployed and verified in `env` (extra carries the release).

    The URI scheme starts with `x-`, which Airflow leaves alone: any other unknown scheme makes
    Airflow look for a normalizer among every installed provider's asset handlers, importing
    them (with the Amazon provider installed, boto3: 0.5-1.6 s at every task start of a promote DAG)."""
    return Asset(name=f"stella__{app}__{env}__verified", uri=f"x-stella://{app}/{env}", group="stella")


# App and environment names are `[a-z][a-z0-9-]*` (no "_"), so "__" splits a DAG id unambiguously.
_DAG_ID_RE = re.compile(
    r"^stella_(?:release__(?P<rapp>[a-z][a-z0-9-]*)|promote__(?P<papp>[a-z][a-z0-9-]*)__[a-z][a-z0-9-]*)$")


def app_of_dag_id(dag_id: str) -> str | None:
    """The app a generated DAG id belongs to; None for any other DAG id."""
    m = _DAG_ID_RE.match(dag_id)
    return (m.group("rapp") or m.group("papp")) if m else None


def shard_of(app: str, shards: int) -> int:
    """Stable shard of an app (sha256, not Python's salted hash): the same in every process."""
    return int.from_bytes(hashlib.sha256(app.encode()).digest()[:8], "big") % shards


def build_estate_dags(estate_path: str | Path, *, shard: int = 0, shards: int = 1) -> dict[str, DAG]:
    """Return {dag_id: DAG} for the apps of this shard; raises EstateError (file, field path, fix)
    for a broken estate.

    A DAG file calls this once per shard (`stella dags render` writes them): an app's DAGs live
    in the file of shard `shard_of(app, shards)`. Under Airflow's parsing context (a task start
    re-parses only its DAG's file and names the DAG), only that DAG is built, from the part of
    the estate it uses; other files' DAG ids return {} without reading the estate. Without the
    context (the dag-processor) the whole estate file is validated.
    """
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is not in 0..{shards - 1}")
    path = str(Path(estate_path).resolve())
    wanted = get_parsing_context().dag_id
    if wanted:
        app = app_of_dag_id(wanted)
        if app is None or shard_of(app, shards) != shard:
            return {}
        estate = load_estate_for_app(path, app)
        build = _dag_builders(estate, app, path).get(wanted)
        return {wanted: build()} if build else {}
    estate = load_estate(path, prime_cache=True)
    dags: dict[str, DAG] = {}
    for each in estate.apps:
        if shard_of(each.name, shards) == shard:
            dags.update({dag_id: build() for dag_id, build in _dag_builders(estate, each.name, path).items()})
    return dags


def _dag_builders(estate: Estate, app: str, path: str) -> dict[str, Callable[[], DAG]]:
    """{dag_id: () -> DAG} of one app: ids are cheap, DAGs are built only when called."""
    out: dict[str, Callable[[], DAG]] = {release_dag_id(app): partial(_release_dag, estate, app, path)}
    for env in estate.app_environments(app):
        out[promote_dag_id(app, env.name)] = partial(_promote_dag, estate, app, env.name, path)
    return out


def _freeze_aware(env):
    """The environment's cron schedule, skipping ticks inside its freeze gates' windows."""
    from stella_operators.timetables import FreezeAwareCronTimetable

    windows = [w for g in env.gates if g.get("type") == "freeze" for w in g.get("windows", [])]
    return FreezeAwareCronTimetable(env.schedule.cron, timezone=env.schedule.timezone, windows=windows)


def _release_dag(estate: Estate, app: str, path: str) -> DAG:
    comps = estate.app(app).components
    params = {
        "name": Param(type="string", pattern=NAME_RE.pattern, title="Release name",
                      description="Unique per app, e.g. shop-2.3.1"),
        **{c.name: Param(type="string", pattern=REF_PATTERN, minLength=1, title=f"{c.name} image",
                         description=f"Tag or sha256 digest of {c.repository}"
                         + (" (digests only)" if c.accept == "digests" else ""))
           for c in comps},
        # Optional fields are nullable: Airflow's trigger form marks every param whose type lacks
        # "null" as required and keeps the Trigger button disabled until it is filled.
        "source_commit": Param(None, type=["null", "string"], title="Source commit (optional)"),
    }
    with DAG(dag_id=release_dag_id(app), schedule=None, start_date=START, catchup=False,
             params=params, tags=["stella", f"app:{app}", "release"], max_active_runs=4,
             description=f"Cut a digest-pinned release of {app}",
             doc_md=f"Resolve each component of **{app}** to a digest once, seal the release, sign evidence.") as dag:
        CreateReleaseOperator(
            task_id="create_release", estate_path=path, app=app,
            release_name="{{ params.name }}",
            refs={c.name: "{{ params['" + c.name + "'] }}" for c in comps},
            source={"commit": "{{ params.source_commit or '' }}"},
        )
    return dag


def _promote_dag(estate: Estate, app: str, env_name: str, path: str) -> DAG:
    env = estate.environment(env_name)
    upstream = [u for u in estate.upstream(env_name) if u in {e.name for e in estate.app_environments(app)}]
    schedule = [verified_asset(app, u) for u in upstream] if env.auto_promote and upstream else None
    if env.schedule is not None:
        schedule = _freeze_aware(env)
    if (env.auto_promote or env.schedule is not None) and upstream:
        release_param = Param(None, type=["null", "string"], title="Release (optional)",
                              description="Empty: the release the upstream environment verified last")
        reason_param = Param("automatic promotion" if env.auto_promote else "scheduled promotion",
                             type="string", pattern=REASON_PATTERN, title="Reason")
    else:
        release_param = Param(type="string", minLength=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$",
                              title="Release", description="Release name (e.g. shop-2.3.1) or id")
        reason_param = Param(type="string", minLength=3, pattern=REASON_PATTERN, title="Reason",
                             description="Why; goes into the evidence (white space alone is refused)")
    timeout = timedelta(seconds=env.deploy_timeout_s + 60)
    with DAG(dag_id=promote_dag_id(app, env_name), schedule=schedule, start_date=START, catchup=False,
             params={"release": release_param, "reason": reason_param,
                     "freeze_override_reason": Param(None, type=["null", "string"],
                                                     title="Freeze override reason (optional)",
                                                     description="Only for users listed as overriders of an "
                                                                 "active freeze window; adds one approval")},
             max_active_runs=env.max_active_promotions,
             tags=["stella", f"app:{app}", f"env:{env_name}", "promote"],
             description=f"Promote a release of {app} into {env_name}"
             + (f" (after {', '.join(upstream)})" if upstream else ""),
             doc_md=f"Promote **{app}** into **{env_name}**: evaluate the gates, wait for approvals, deploy to "
                    f"{len(env.targets)} target(s) with `{env.strategy}`, verify, emit the Asset.") as dag:
        common: dict[str, Any] = {"estate_path": path, "app": app, "environment": env_name}
        request = RequestPromotionOperator(task_id="request", release="{{ params.release or '' }}",
                                           reason="{{ params.reason }}", **common)
        promo = "{{ ti.xcom_pull(task_ids='request') }}"
        gates = EvaluateGatesOperator(task_id="gates", promotion_id=promo,
                                      freeze_override_reason="{{ params.freeze_override_reason or '' }}", **common)
        approval = ApprovalSensor(task_id="approval", promotion_id=promo, **common)
        deploy = DeployReleaseOperator(task_id="deploy", promotion_id=promo,
                                       execution_timeout=timeout, **common)
        verify = VerifyPromotionOperator(task_id="verify", promotion_id=promo,
                                         outlets=[verified_asset(app, env_name)], **common)
        request >> gates >> approval >> deploy >> verify
    return dag
