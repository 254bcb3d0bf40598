"""Parsing of image references (`registry/repo:tag`, `registry/repo@sha256:...`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")


class RefError(ValueError):
    """An image reference that cannot be parsed or is not allowed where it is used."""


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference. `registry` is host[:port]; `repository` excludes the registry."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`registry/repository`, the form used in pinned references."""
        return f"{self.registry}/{self.repository}"

    @property
    def pinned(self) -> str:
        if not self.digest:
            raise RefError(f"{self} is not pinned to a digest")
        return f"{self.name}@{self.digest}"

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def is_digest(value: str) -> bool:
    return bool(DIGEST_RE.match(value))


def parse_image_ref(ref: str, *, default_registry: str | None = None) -> ImageRef:
    """Parse `[registry/]repo[:tag][@sha256:...]`.

    The registry part is required unless `default_registry` is given: an estate never relies
    on an implicit Docker Hub (offline-first).
    """
    if not isinstance(ref, str) or not ref or ref != ref.strip():
        raise RefError(f"image reference {ref!r} is empty or has surrounding spaces")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise RefError(f"{ref!r}: digest must be 'sha256:' followed by 64 lowercase hex characters")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise RefError(f"{ref!r}: invalid tag {tag!r}")
    first, _, remainder = rest.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, repository = first, remainder
    elif default_registry:
        registry, repository = default_registry, rest
    else:
        raise RefError(f"{ref!r}: name the registry explicitly (e.g. 'registry.example:5000/{rest}')")
    if not _HOST_RE.match(registry):
        raise RefError(f"{ref!r}: invalid registry host {registry!r}")
    if not _REPO_RE.match(repository):
        raise RefError(f"{ref!r}: invalid repository name {repository!r} (lowercase, digits, . _ - and /)")
    return ImageRef(registry=registry, repository=repository, tag=tag, digest=digest)
