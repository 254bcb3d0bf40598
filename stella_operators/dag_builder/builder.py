"""Build Airflow DAGs from an estate file. Parsing reads the file (and keeps the parsed YAML in
`$STELLA_HOME/cache` for task starts): no network, no ledger."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, CronTriggerTimetable, Param, TaskGroup, chain, get_parsing_context
from airflow.task.trigger_rule import TriggerRule

from stella_operators.dag_builder.ab import ab_stage_tasks
from stella_operators.dag_builder.audit_dag import AUDIT_CHECKPOINT_DAG_ID, audit_checkpoint_dag
from stella_operators.dag_builder.sites import site_task_args
from stella_operators.estate.loader import load_estate, load_estate_for_app
from stella_operators.estate.models import Environment, Estate
from stella_operators.operators.canary import CanaryStepOperator
from stella_operators.operators.drift import CheckDriftOperator
from stella_operators.operators.gates import EvaluateGatesOperator
from stella_operators.operators.promotion import (
    DeployReleaseOperator,
    RequestPromotionOperator,
    RetirePreviousSetOperator,
    RollBackIfLeftOperator,
    VerifyPromotionOperator,
)
from stella_operators.operators.release import CreateReleaseOperator
from stella_operators.operators.rollback import (
    RecordRollbackOperator,
    RequestRollbackOperator,
    RollbackPathOperator,
)
from stella_operators.promotion.strategies import batch_count, policy_of
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


def rollback_dag_id(app: str, env: str) -> str:
    return f"stella_rollback__{app}__{env}"


def drift_dag_id(app: str, env: str) -> str:
    return f"stella_drift__{app}__{env}"


def verified_asset(app: str, env: str) -> Asset:
    """Event: a release of `app` was deployed and verified in `env` (extra carries the release).

    The URI scheme starts with `x-`, which Airflow leaves alone: any other unknown scheme makes
    Airflow look for a normalizer among every installed provider's asset handlers, importing
    them (with the Amazon provider installed, boto3: 0.5-1.6 s at every task start of a promote DAG)."""
    return Asset(name=f"stella__{app}__{env}__verified", uri=f"x-stella://{app}/{env}", group="stella")


# App and environment names are `[a-z][a-z0-9-]*` (no "_"), so "__" splits a DAG id unambiguously.
_DAG_ID_RE = re.compile(
    r"^stella_(?:release__(?P<rapp>[a-z][a-z0-9-]*)"
    r"|(?:promote|rollback|drift)__(?P<papp>[a-z][a-z0-9-]*)__[a-z][a-z0-9-]*)$")


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
    if wanted == AUDIT_CHECKPOINT_DAG_ID:  # not an app's: it lives in shard 0's file
        audit_dag = audit_checkpoint_dag(path) if shard == 0 else None
        return {wanted: audit_dag} if audit_dag else {}
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
    audit_dag = audit_checkpoint_dag(path) if shard == 0 else None
    if audit_dag is not None:
        dags[AUDIT_CHECKPOINT_DAG_ID] = audit_dag
    return dags


def _dag_builders(estate: Estate, app: str, path: str) -> dict[str, Callable[[], DAG]]:
    """{dag_id: () -> DAG} of one app: ids are cheap, DAGs are built only when called."""
    out: dict[str, Callable[[], DAG]] = {release_dag_id(app): partial(_release_dag, estate, app, path)}
    for env in estate.app_environments(app):
        out[promote_dag_id(app, env.name)] = partial(_promote_dag, estate, app, env.name, path)
        out[rollback_dag_id(app, env.name)] = partial(_rollback_dag, estate, app, env.name, path)
        out[drift_dag_id(app, env.name)] = partial(_drift_dag, estate, app, env.name, path)
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
        at_site = {**common, **site_task_args(env)}  # deploy, verify, retire run where the targets are
        first, last = _deploy_tasks(env, promo, at_site, timeout)
        verify = VerifyPromotionOperator(task_id="verify", promotion_id=promo,
                                         outlets=[verified_asset(app, env_name)], **at_site)
        request >> gates >> approval >> first
        last >> verify
        if env.strategy in ("blue_green", "canary"):
            verify >> RetirePreviousSetOperator(task_id="retire_previous_set", promotion_id=promo, **at_site)
    return dag


def _deploy_tasks(env: Environment, promo: str, common: dict[str, Any], timeout: timedelta
                  ) -> tuple[DeployReleaseOperator, DeployReleaseOperator | CanaryStepOperator]:
    """One `deploy` task; a rolling environment with several batches gets a `deploy` task group
    instead: one task per batch (the count is known from the estate), chained in order, plus a
    `roll_back_if_left` task that runs only when a batch task failed for good (trigger rule
    one_failed) and rolls back a deployment its dead tasks left unfinished. Per-target results are
    in each batch task's log and XCom: the grid shows batches, not one task per host."""
    if env.strategy == "canary":
        return _canary_tasks(env, promo, common, timeout)
    n = batch_count(env)
    if env.strategy == "ab":
        return ab_stage_tasks(env, promo, common)
    if n == 1:
        deploy = DeployReleaseOperator(task_id="deploy", promotion_id=promo, execution_timeout=timeout, **common)
        return deploy, deploy
    policy = policy_of(env)
    with TaskGroup("deploy", tooltip=f"{env.strategy}: {n} batches", prefix_group_id=True):
        tasks = []
        for k, names in enumerate(policy.batches):
            waves = math.ceil(len(names) / policy.max_unavailable)
            tasks.append(DeployReleaseOperator(
                task_id=f"batch_{k + 1}", promotion_id=promo, batch=k,
                execution_timeout=timedelta(seconds=(env.deploy_timeout_s * waves) + policy.pause_s + 60),
                doc_md=f"Batch {k + 1} of {n}: {', '.join(names)}", **common))
        chain(*tasks)
        # A leaf beside `verify`: skipped (fine for the run's state) unless a batch failed.
        tasks >> RollBackIfLeftOperator(task_id="roll_back_if_left", promotion_id=promo,
                                        trigger_rule=TriggerRule.ONE_FAILED, **common)
    return tasks[0], tasks[-1]


def _canary_tasks(env: Environment, promo: str, common: dict[str, Any], timeout: timedelta
                  ) -> tuple[DeployReleaseOperator, CanaryStepOperator]:
    """A `canary` task group: `deploy` (the release to the idle group, 0 % of the traffic), then one
    task per step (`step_1_10pct`, ...) chained, plus `roll_back_if_left` (trigger rule one_failed)
    for a deployment a dead task left unfinished: traffic back first, then the previous digests."""
    assert env.canary is not None  # the estate model requires the block
    plan = env.canary.plan()
    with TaskGroup("canary", tooltip=f"canary: {' -> '.join(f'{w} %' for w in plan)}", prefix_group_id=True):
        deploy = DeployReleaseOperator(task_id="deploy", promotion_id=promo, execution_timeout=timeout,
                                       doc_md="The release to the idle group, in service with 0 % of the traffic",
                                       **common)
        steps = [CanaryStepOperator(task_id=f"step_{k + 1}_{w}pct", promotion_id=promo, step=k,
                                    doc_md=f"Step {k + 1} of {len(plan)}: {w} % of new requests, bake "
                                           f"{env.canary.bake_s:.0f} s, analyse, then advance / roll back / ask",
                                    **common)
                 for k, w in enumerate(plan)]
        chain(deploy, *steps)
        [deploy, *steps] >> RollBackIfLeftOperator(task_id="roll_back_if_left", promotion_id=promo,
                                                   trigger_rule=TriggerRule.ONE_FAILED, **common)
    return deploy, steps[-1]


def _rollback_dag(estate: Estate, app: str, env_name: str, path: str) -> DAG:
    """Redeploy an earlier release verified in this environment, through the promotion's deploy
    engine, lock and recovery; gates and approvals unless `emergency`; signed evidence always."""
    env = estate.environment(env_name)
    params = {
        # Free text, checked against the ledger when the run starts (the trigger form is built at
        # parse time, when the ledger is not read): a release not verified here fails the run at
        # once, naming the releases one may choose.
        "release": Param(None, type=["null", "string"], title="Release to return to (optional)",
                         description=f"Name or id of a release verified in {env_name} before. Empty: the last "
                                     "release verified here before the current one"),
        "reason": Param(type="string", minLength=3, pattern=REASON_PATTERN, title="Reason",
                        description="Why; goes into the evidence (white space alone is refused)"),
        "emergency": Param(False, type="boolean", title="Emergency",
                           description="Skip the gates and approvals (recorded as signed override evidence); "
                                       "the deployment, verification and evidence are never skipped"),
    }
    timeout = timedelta(seconds=env.deploy_timeout_s + 60)
    with DAG(dag_id=rollback_dag_id(app, env_name), schedule=None, start_date=START, catchup=False,
             params=params, max_active_runs=1, tags=["stella", f"app:{app}", f"env:{env_name}", "rollback"],
             description=f"Roll {app} in {env_name} back to an earlier verified release",
             doc_md=f"Return **{app}** in **{env_name}** to the exact digests of a release verified there before "
                    "(default: the one before the current). Same deploy lock, engine and recovery as a "
                    "promotion; a signed `rollback` record names the state left and the state returned to.") as dag:
        common: dict[str, Any] = {"estate_path": path, "app": app, "environment": env_name}
        request = RequestRollbackOperator(task_id="request", release="{{ params.release or '' }}",
                                          reason="{{ params.reason }}", emergency="{{ params.emergency }}", **common)
        promo = "{{ ti.xcom_pull(task_ids='request') }}"
        path_ = RollbackPathOperator(task_id="path", promotion_id=promo, gates_task="gates",
                                     emergency_task="emergency")
        gates = EvaluateGatesOperator(task_id="gates", promotion_id=promo, **common)
        approval = ApprovalSensor(task_id="approval", promotion_id=promo, **common)
        emergency = EmptyOperator(task_id="emergency", doc_md="Emergency mode: gates and approvals skipped "
                                                              "(signed override evidence from `request`).")
        at_site = {**common, **site_task_args(env)}  # the steps that touch targets run where they are
        deploy = DeployReleaseOperator(task_id="deploy", promotion_id=promo, execution_timeout=timeout,
                                       trigger_rule="none_failed_min_one_success", **at_site)
        # No outlet: a rollback must not start the automatic promotion of an older release downstream.
        verify = VerifyPromotionOperator(task_id="verify", promotion_id=promo, **at_site)
        record = RecordRollbackOperator(task_id="evidence", promotion_id=promo, trigger_rule="all_done", **common)
        request >> path_ >> [gates, emergency]
        gates >> approval >> deploy
        emergency >> deploy >> verify >> record
    return dag


def _drift_dag(estate: Estate, app: str, env_name: str, path: str) -> DAG:
    """Compare every target with the release last verified here, on the environment's `drift`
    schedule (none: only when triggered). Drift fails the run and is recorded; nothing is fixed."""
    env = estate.environment(env_name)
    schedule = (CronTriggerTimetable(env.drift.schedule, timezone=env.drift.timezone)
                if env.drift is not None else None)
    with DAG(dag_id=drift_dag_id(app, env_name), schedule=schedule, start_date=START, catchup=False,
             max_active_runs=1, tags=["stella", f"app:{app}", f"env:{env_name}", "drift"],
             description=f"Check that every target of {env_name} runs the release of {app} verified there",
             doc_md=f"Read what runs on the {len(env.targets)} target(s) of **{env_name}** and compare it with the "
                    f"release of **{app}** the ledger last verified there and its sticker. Drift fails the run, "
                    "is recorded in the ledger and shows on the Releases page and in `stella status`; "
                    "nothing is changed on the targets.") as dag:
        CheckDriftOperator(task_id="check", estate_path=path, app=app, environment=env_name, **site_task_args(env))
    return dag
