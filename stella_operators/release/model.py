"""The Release: an immutable set `component -> repository@sha256:...`, identified by a content hash."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stella_operators.release.refs import DIGEST_RE


class ReleaseState(StrEnum):
    DRAFT = "draft"
    SEALED = "sealed"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


class ComponentDigest(BaseModel):
    """One component of a release, pinned. `tag` is kept for display only, never used to deploy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    repository: str = Field(description="registry/repository, without tag or digest")
    digest: str
    tag: str | None = None

    @field_validator("digest")
    @classmethod
    def _digest_only(cls, v: str) -> str:
        if not DIGEST_RE.match(v):
            raise ValueError("must be 'sha256:' followed by 64 lowercase hex characters (a tag is not a digest)")
        return v

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"


def content_hash(components: list[ComponentDigest]) -> str:
    """SHA-256 over the canonical JSON of the digest set (names, repositories, digests; not tags)."""
    # Imported lazily so release/ stays importable without the evidence package's deps.
    from stella_operators.evidence.canonical import canonical_json

    body = sorted(
        ({"name": c.name, "repository": c.repository, "digest": c.digest} for c in components),
        key=lambda c: c["name"],
    )
    return "sha256:" + hashlib.sha256(canonical_json({"components": body})).hexdigest()


class Release(BaseModel):
    """A release of one app. Once `sealed`, its components can never change."""

    model_config = ConfigDict(extra="forbid")

    id: str
    app: str
    name: str
    components: list[ComponentDigest]
    state: ReleaseState = ReleaseState.SEALED
    content_hash: str
    created_at: datetime
    created_by: str
    source: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def seal(cls, *, id: str, app: str, name: str, components: list[ComponentDigest], created_at: datetime,
             created_by: str, source: dict[str, str] | None = None) -> Release:
        names = [c.name for c in components]
        if len(set(names)) != len(names):
            raise ValueError(f"release {name!r} names a component twice: {sorted(names)}")
        if not components:
            raise ValueError(f"release {name!r} has no components")
        ordered = sorted(components, key=lambda c: c.name)
        return cls(id=id, app=app, name=name, components=ordered, state=ReleaseState.SEALED,
                   content_hash=content_hash(ordered), created_at=created_at, created_by=created_by,
                   source=source or {})

    def digests(self) -> dict[str, str]:
        return {c.name: c.digest for c in self.components}

    def component(self, name: str) -> ComponentDigest:
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)

    def check_integrity(self) -> None:
        """Raise if the stored content hash does not match the components (tampering or a bug)."""
        actual = content_hash(self.components)
        if actual != self.content_hash:
            raise ValueError(f"release {self.id}: content hash {self.content_hash} != computed {actual}")

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)
