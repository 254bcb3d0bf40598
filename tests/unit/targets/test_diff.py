"""diff(facts, plan): what a deployment would change on one target (pure, no I/O)."""

from __future__ import annotations

from stella_operators.release.model import ComponentDigest
from stella_operators.targets.contract import (
    ComponentSpec,
    RunningComponent,
    TargetFacts,
    TargetPlan,
    VersionSticker,
)
from stella_operators.targets.diff import TargetDiff, diff, same_plan

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def _plan(**digests: str) -> TargetPlan:
    comps = [ComponentDigest(name=n, repository="reg:5000/shop/" + n, digest=d) for n, d in digests.items()]
    sticker = VersionSticker(app="shop", release_id="r1", release_name="1.0", content_hash="h", components=comps,
                             deployment_id="d1", promotion_id="p1", environment="prod", target="h1",
                             strategy="all_at_once", deployed_at="2026-11-30T00:00:00+00:00")
    return TargetPlan(app="shop", environment="prod", target="h1", deployment_id="d1",
                      components=tuple(ComponentSpec(component=c) for c in comps), sticker=sticker)


def _facts(**running: tuple[str | None, bool | None]) -> TargetFacts:
    return TargetFacts(target="h1", app="shop", sticker=None, components={
        n: RunningComponent(component=n, digest=d, workload_id=n, workload_name=n, healthy=h)
        for n, (d, h) in running.items()})


def test_each_action_is_decided_from_the_running_digest_and_health():
    d = diff(_facts(web=(D1, True), api=(D2, True), worker=(D2, False)),
             _plan(web=D2, api=D2, worker=D2, cron=D1))
    assert {c.component: c.action for c in d.changes} == {
        "web": "replace", "api": "keep", "worker": "restart", "cron": "start"}
    assert d.change("web").current == D1 and d.change("cron").current is None
    assert d.changed


def test_a_target_already_at_the_release_is_unchanged_and_says_so():
    d = diff(_facts(web=(D2, None)), _plan(web=D2))  # health unknown (no health check) counts as running
    assert not d.changed
    assert d.sentences() == ["web: sha256:222222222222 already runs, left alone"]


def test_an_untrusted_digest_is_replaced_and_components_outside_the_release_are_left_alone():
    d = diff(_facts(web=(None, True), legacy=(D1, True)), _plan(web=D2))
    assert d.change("web").action == "replace" and d.unmanaged == ("legacy",)
    assert "legacy: not in the release, left alone" in d.sentences()
    assert "web: nothing -> sha256:222222222222, replaced" in d.sentences()


def test_the_plan_an_approver_saw_round_trips_and_any_live_difference_is_noticed():
    seen = diff(_facts(web=(D1, True)), _plan(web=D2))
    assert TargetDiff.from_dict(seen.to_dict()) == seen
    assert same_plan(seen, diff(_facts(web=(D1, True)), _plan(web=D2)))
    # someone changed the host by hand after approval: now the planned digest already runs
    assert not same_plan(seen, diff(_facts(web=(D2, True)), _plan(web=D2)))


def test_same_digest_with_other_settings_is_reconfigured_and_unknown_settings_are_kept():
    plan = _plan(web=D1)
    spec = plan.components[0]
    moved = spec.model_copy(update={"ports": [{"target": 8080, "published": 18080}]})
    moved = type(spec).model_validate(moved.model_dump())
    assert moved.fingerprint() != spec.fingerprint()
    assert spec.fingerprint() == type(spec).model_validate(spec.model_dump()).fingerprint()  # stable

    def facts(fingerprint):
        return TargetFacts(target="h1", app="shop", sticker=None, components={"web": RunningComponent(
            component="web", digest=D1, workload_id="w", workload_name="w", healthy=True, fingerprint=fingerprint)})

    assert diff(facts(spec.fingerprint()), plan).change("web").action == "keep"
    changed = diff(facts(moved.fingerprint()), plan).change("web")
    assert changed.action == "reconfigure" and "runs with other settings" in changed.sentence()
    # a workload started before fingerprints existed is not restarted for lack of one
    assert diff(facts(None), plan).change("web").action == "keep"


def test_env_from_values_are_not_part_of_the_fingerprint_only_the_reference():
    spec = _plan(web=D1).components[0]
    a = type(spec).model_validate({**spec.model_dump(), "env_from": {"X": {"variable": "a"}}})
    b = type(spec).model_validate({**spec.model_dump(), "env_from": {"X": {"variable": "b"}}})
    assert a.fingerprint() != b.fingerprint()
