"""Cutting a release: resolve each component's ref to a digest once, seal, record, sign."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stella_operators.estate.models import Component, Estate
from stella_operators.release.model import ComponentDigest, Release
from stella_operators.release.refs import RefError, is_digest, parse_image_ref

if TYPE_CHECKING:
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.ledger.protocols import ReleaseLedger

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")

# (component, repository, reference) -> ComponentDigest; a reference is a tag or a digest.
Resolver = Callable[[Component, str, str], ComponentDigest]


class ReleaseRefused(ValueError):
    """A release that cannot be cut as asked; the message says which component and why."""


def parse_component_ref(component: Component, ref: str) -> tuple[str | None, str | None]:
    """Split what a user typed for a component into (tag, digest); check it names this component."""
    ref = ref.strip()
    if is_digest(ref):
        return None, ref
    if "/" in ref or "@" in ref:
        try:
            parsed = parse_image_ref(ref)
        except RefError as exc:
            raise ReleaseRefused(f"component {component.name}: {exc}") from None
        if parsed.name != component.repository:
            raise ReleaseRefused(f"component {component.name}: {ref!r} is not from its repository "
                                 f"{component.repository!r} (see the estate file)")
        return parsed.tag, parsed.digest
    try:
        parse_image_ref(f"{component.repository}:{ref}")
    except RefError:
        raise ReleaseRefused(f"component {component.name}: {ref!r} is neither a tag nor 'sha256:<64 hex>'") from None
    return ref, None


def cut_release(estate: Estate, *, app: str, name: str, refs: Mapping[str, str], resolve: Resolver,
                created_by: str, source: Mapping[str, str] | None = None,
                now: datetime | None = None) -> Release:
    """Resolve refs (every component of the app must be given) and return a sealed Release."""
    if app not in {a.name for a in estate.apps}:
        raise ReleaseRefused(f"unknown app {app!r} (estate apps: {', '.join(a.name for a in estate.apps)})")
    if not NAME_RE.match(name or ""):
        raise ReleaseRefused(f"release name {name!r} must match {NAME_RE.pattern}")
    components = {c.name: c for c in estate.app(app).components}
    unknown = sorted(set(refs) - set(components))
    if unknown:
        raise ReleaseRefused(f"app {app} has no component {', '.join(unknown)} (components: {', '.join(components)})")
    missing = sorted(c for c in components if not (refs.get(c) or "").strip())
    if missing:
        raise ReleaseRefused(f"give a tag or digest for every component of {app}; missing: {', '.join(missing)}")
    parsed = {}
    for cname, comp in components.items():  # check every ref before any network call
        tag, digest = parse_component_ref(comp, refs[cname])
        if comp.accept == "digests" and not digest:
            raise ReleaseRefused(f"component {cname} accepts digests only (estate: accept: digests); "
                                 f"give {cname}=sha256:<64 hex> instead of the tag {tag!r}")
        parsed[cname] = (tag, digest)
    pinned = []
    for cname, (tag, digest) in parsed.items():
        comp = components[cname]
        ref = digest or tag
        if ref is None:  # parse_component_ref gives a tag, a digest or both, never neither
            raise ReleaseRefused(f"component {cname}: {refs[cname]!r} names neither a tag nor a digest")
        resolved = resolve(comp, comp.repository, ref)
        if digest and resolved.digest != digest:
            raise ReleaseRefused(f"component {cname}: registry returned {resolved.digest} for {digest}")
        pinned.append(ComponentDigest(name=cname, repository=comp.repository, digest=resolved.digest, tag=tag))
    return Release.seal(id=f"rel-{uuid.uuid4().hex[:16]}", app=app, name=name, components=pinned,
                        created_at=now or datetime.now(UTC), created_by=created_by,
                        source={k: v for k, v in (source or {}).items() if v})


def record_release(ledger: ReleaseLedger, key: SigningKey, release: Release) -> None:
    """Store a sealed release and its signed `release` evidence (the ledger refuses a duplicate name)."""
    from stella_operators.evidence.recorder import record_evidence

    ledger.add_release(release)
    record_evidence(ledger, key, "release", release, {
        "what": "release sealed", "created_by": release.created_by, "source": release.source,
        "components": [c.model_dump() for c in release.components]})
