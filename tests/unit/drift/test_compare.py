"""The drift comparison is pure: facts of one target against the release verified there."""

from __future__ import annotations

from stella_operators.drift.compare import compare_target
from stella_operators.release.model import ComponentDigest, Release
from stella_operators.targets.contract import RunningComponent, TargetFacts, VersionSticker
from tests.unit.promotion.fakes import T0, digest


def release(n: int, *components: str) -> Release:
    comps = components or ("web",)
    return Release.seal(id=f"rel-{n}", app="shop", name=f"shop-{n}.0.0", created_at=T0, created_by="ci", source={},
                        components=[ComponentDigest(name=c, repository=f"reg.local/shop/{c}", digest=digest(n + i),
                                                    tag=f"{n}.0.0") for i, c in enumerate(comps)])


def sticker(rel: Release) -> VersionSticker:
    return VersionSticker(app="shop", release_id=rel.id, release_name=rel.name, content_hash=rel.content_hash,
                          components=list(rel.components), deployment_id="dep-1", promotion_id="prm-1",
                          environment="prod", target="a", strategy="all_at_once", deployed_at=T0.isoformat())


def facts(running: dict[str, str | None], st: VersionSticker | None) -> TargetFacts:
    return TargetFacts(target="a", app="shop", sticker=st, components={
        c: RunningComponent(component=c, digest=d, workload_id=f"id-{c}", workload_name=f"shop-{c}")
        for c, d in running.items()})


def kinds(found) -> list[tuple[str, str | None]]:
    return [(f.kind, f.component) for f in found]


def test_the_verified_release_with_its_sticker_is_no_drift():
    rel = release(1)
    assert compare_target(facts({"web": digest(1)}, sticker(rel)), rel, "prod") == []


def test_another_digest_names_target_component_expected_and_running():
    rel = release(1)
    [f] = compare_target(facts({"web": digest(7)}, sticker(rel)), rel, "prod")
    assert (f.kind, f.target, f.component, f.expected, f.running) == ("digest", "a", "web", digest(1), digest(7))
    assert f.sentence() == f"a: web: expected {digest(1)}, running {digest(7)}"


def test_a_digest_we_cannot_trust_is_drift():
    rel = release(1)
    [f] = compare_target(facts({"web": None}, sticker(rel)), rel, "prod")
    assert f.kind == "digest" and "without a trusted digest" in f.sentence()


def test_a_stopped_or_removed_component_is_missing():
    rel = release(1, "web", "worker")
    found = compare_target(facts({"web": digest(1)}, sticker(rel)), rel, "prod")
    assert kinds(found) == [("missing", "worker")]
    assert found[0].sentence() == f"a: worker: expected {digest(2)}, nothing runs"


def test_nothing_running_at_all_is_missing_without_a_separate_sticker_finding():
    rel = release(1)
    assert kinds(compare_target(facts({}, None), rel, "prod")) == [("missing", "web")]


def test_an_extra_component_is_unmanaged():
    rel = release(1)
    found = compare_target(facts({"web": digest(1), "debug": digest(9)}, sticker(rel)), rel, "prod")
    assert kinds(found) == [("unmanaged", "debug")]
    assert "not part of release shop-1.0.0" in found[0].sentence()


def test_a_missing_or_other_sticker_is_drift_even_with_the_right_digests():
    rel, other = release(1), release(5)
    assert kinds(compare_target(facts({"web": digest(1)}, None), rel, "prod")) == [("sticker_missing", None)]
    [f] = compare_target(facts({"web": digest(1)}, sticker(other)), rel, "prod")
    assert f.kind == "sticker_other" and "shop-5.0.0" in f.sentence() and "shop-1.0.0" in f.sentence()


def test_with_nothing_verified_anything_running_is_unmanaged_and_nothing_is_fine():
    assert compare_target(facts({}, None), None, "prod") == []
    assert kinds(compare_target(facts({"web": digest(3)}, None), None, "prod")) == [("unmanaged", "web")]
