"""CreateReleaseOperator: resolve tags to digests once, seal the release, record it with evidence."""

from __future__ import annotations

from typing import Any

from stella_operators.operators.base import StellaBaseOperator, actor_of
from stella_operators.operators.locker import archive_quietly


class CreateReleaseOperator(StellaBaseOperator):
    """Cut a sealed, digest-pinned release of an app.

    :param app: app name from the estate.
    :param release_name: display name, unique per app (e.g. ``shop-2.3.1``); templated.
    :param refs: component -> tag, ``sha256:`` digest or full reference; templated.
    :param source: optional source reference (repo, commit, build URL); templated.
    """

    template_fields = (*StellaBaseOperator.template_fields, "release_name", "refs", "source")

    def __init__(self, *, app: str, release_name: str, refs: dict[str, str],
                 source: dict[str, str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.app = app
        self.release_name = release_name
        self.refs = refs
        self.source = source or {}

    def execute(self, context: Any) -> dict[str, Any]:
        from stella_operators.hooks.registry import registry_resolver
        from stella_operators.release.service import cut_release, record_release

        refs = {k: v for k, v in (self.refs or {}).items() if v not in (None, "")}
        release = cut_release(self.estate, app=self.app, name=self.release_name, refs=refs,
                              resolve=registry_resolver(self.estate), created_by=actor_of(context), source=self.source)
        record_release(self.ledger, self.signing_key, release)
        archive_quietly(self.ledger, release_id=release.id)
        self.log.info("Sealed release %s (%s) %s", release.name, release.id, release.content_hash)
        for c in release.components:
            self.log.info("  %s = %s", c.name, c.ref)
        return {"release_id": release.id, "name": release.name, "content_hash": release.content_hash,
                "digests": release.digests()}
