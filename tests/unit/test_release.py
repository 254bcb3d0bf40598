"""Releases: refs parse strictly, digests pin, content hash covers the digest set, seals hold."""

from datetime import UTC, datetime

import pytest

from stella_operators.estate import parse_estate
from stella_operators.release import ComponentDigest, Release, parse_image_ref
from stella_operators.release.refs import RefError
from stella_operators.release.service import ReleaseRefused, cut_release

D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
ESTATE = parse_estate("""
registries: [{host: "reg.local:5000", scheme: http}]
apps:
  - name: shop
    components:
      - {name: web, repository: reg.local:5000/demo/web}
      - {name: api, repository: reg.local:5000/demo/api, accept: digests}
environments:
  - name: dev
    targets: [{name: dev-1, type: docker, connection: c}]
""")


def resolver(table):
    calls = []

    def resolve(component, repository, reference):
        calls.append((repository, reference))
        return ComponentDigest(name=component.name, repository=repository, digest=table[(repository, reference)])

    resolve.calls = calls
    return resolve


def test_parse_refs():
    r = parse_image_ref(f"reg.local:5000/demo/web:1.2.3@{D1}")
    assert (r.registry, r.repository, r.tag, r.digest) == ("reg.local:5000", "demo/web", "1.2.3", D1)
    assert r.pinned == f"reg.local:5000/demo/web@{D1}"
    with pytest.raises(RefError, match="name the registry explicitly"):
        parse_image_ref("web:1.0")
    with pytest.raises(RefError, match="64 lowercase hex"):
        parse_image_ref("reg.local:5000/demo/web@sha256:abc")
    with pytest.raises(RefError, match="invalid tag"):
        parse_image_ref("reg.local:5000/demo/web:$(x)")


def test_component_digest_refuses_a_tag():
    with pytest.raises(ValueError, match="a tag is not a digest"):
        ComponentDigest(name="web", repository="reg.local:5000/demo/web", digest="latest")


def test_cut_release_resolves_tags_once_and_pins():
    resolve = resolver({("reg.local:5000/demo/web", "1.0.0"): D1, ("reg.local:5000/demo/api", D2): D2})
    rel = cut_release(ESTATE, app="shop", name="shop-1.0.0", refs={"web": "1.0.0", "api": D2},
                      resolve=resolve, created_by="alice", now=datetime(2026, 1, 1, tzinfo=UTC))
    assert rel.digests() == {"api": D2, "web": D1}
    assert rel.component("web").tag == "1.0.0" and rel.component("web").ref.endswith(D1)
    assert len(resolve.calls) == 2
    rel.check_integrity()


def test_content_hash_depends_on_digests_not_tags_or_order():
    a = [ComponentDigest(name="web", repository="r:1/x", digest=D1, tag="1"),
         ComponentDigest(name="api", repository="r:1/y", digest=D2)]
    b = [ComponentDigest(name="api", repository="r:1/y", digest=D2, tag="9"),
         ComponentDigest(name="web", repository="r:1/x", digest=D1)]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ra = Release.seal(id="rel-a", app="shop", name="a", components=a, created_at=now, created_by="x")
    rb = Release.seal(id="rel-b", app="shop", name="b", components=b, created_at=now, created_by="y")
    assert ra.content_hash == rb.content_hash
    c = [ComponentDigest(name="web", repository="r:1/x", digest=D2), b[0]]
    assert Release.seal(id="c", app="shop", name="c", components=c, created_at=now,
                        created_by="x").content_hash != ra.content_hash


def test_tampered_release_fails_integrity():
    rel = cut_release(ESTATE, app="shop", name="r1", refs={"web": D1, "api": D2},
                      resolve=resolver({("reg.local:5000/demo/web", D1): D1, ("reg.local:5000/demo/api", D2): D2}),
                      created_by="a")
    forged = rel.model_copy(update={"components": [rel.components[0].model_copy(update={"digest": D1})] * 2})
    with pytest.raises(ValueError, match="content hash"):
        forged.check_integrity()


@pytest.mark.parametrize("refs,match", [
    ({"web": "1.0.0", "api": "2.0.0"}, "api accepts digests only"),
    ({"web": "1.0.0"}, "missing: api"),
    ({"web": "1.0.0", "api": D2, "db": "1"}, "no component db"),
    ({"web": "other.local/x/web:1", "api": D2}, "is not from its repository"),
    ({"web": "1 0", "api": D2}, "neither a tag nor"),
])
def test_refused_releases(refs, match):
    with pytest.raises(ReleaseRefused, match=match):
        cut_release(ESTATE, app="shop", name="r", refs=refs, resolve=resolver({}), created_by="a")


def test_refused_bad_name_and_unknown_app():
    with pytest.raises(ReleaseRefused, match="release name"):
        cut_release(ESTATE, app="shop", name="bad name", refs={}, resolve=resolver({}), created_by="a")
    with pytest.raises(ReleaseRefused, match="unknown app"):
        cut_release(ESTATE, app="nope", name="r", refs={}, resolve=resolver({}), created_by="a")
