"""Plan a deployment: from estate + release + promotion to one TargetPlan per target."""

from __future__ import annotations

from datetime import UTC, datetime

from stella_operators.estate.models import Estate
from stella_operators.release.model import Release
from stella_operators.targets.contract import ComponentSpec, TargetPlan, VersionSticker


def plan_deployment(estate: Estate, release: Release, *, environment: str, promotion_id: str,
                    deployment_id: str, now: datetime | None = None) -> list[TargetPlan]:
    env = estate.environment(environment)
    app = estate.app(release.app)
    by_name = {c.name: c for c in app.components}
    specs = tuple(
        ComponentSpec(component=c, command=by_name[c.name].command, env=dict(by_name[c.name].env),
                      health=by_name[c.name].health, **by_name[c.name].runtime_fields())
        for c in release.components
    )
    deployed_at = (now or datetime.now(UTC)).isoformat()
    plans = []
    for target in env.targets:
        sticker = VersionSticker(
            app=release.app, release_id=release.id, release_name=release.name,
            content_hash=release.content_hash, components=list(release.components),
            deployment_id=deployment_id, promotion_id=promotion_id, environment=env.name,
            target=target.name, strategy=env.strategy, deployed_at=deployed_at,
        )
        plans.append(TargetPlan(app=release.app, environment=env.name, target=target.name,
                                deployment_id=deployment_id, components=specs, sticker=sticker,
                                health_timeout_s=env.health_timeout_s, run_timeout_s=env.deploy_timeout_s))
    return plans
