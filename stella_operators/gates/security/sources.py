"""Where scan reports come from: a `ReportSource` finds the raw reports for one image digest.

The security gate only asks a source `find(repository, digest)` and parses what it gets back, so
where reports live is pluggable. Implemented here: `FolderSource`, a directory (local or a mounted
share) with reports filed by digest. Future implementations of the same protocol, not built yet:
an object-store source (S3 / GCS prefix per digest) and an OCI-referrers source (reports attached
to the image in the registry as referrer artifacts, found through the referrers API).

A source returns an empty list when it has no report for the digest (the gate then fails closed
with `security.report_missing`) and raises `ReportSourceError` when it cannot look or cannot read
what it found (the gate fails closed with `security.report_unreadable`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from stella_operators.release.refs import DIGEST_RE


@dataclass(frozen=True)
class RawReport:
    """One report as stored. `data` holds the exact bytes when the source has them; the recorded
    hash is over those bytes (so it matches `sha256sum` of the file), else over the UTF-8 text."""

    name: str
    text: str
    data: bytes | None = None

    @property
    def sha256(self) -> str:
        raw = self.data if self.data is not None else self.text.encode("utf-8")
        return "sha256:" + hashlib.sha256(raw).hexdigest()


class ReportSourceError(Exception):
    """The source could not look for, or could not read, the reports of a digest."""


@runtime_checkable
class ReportSource(Protocol):
    def find(self, repository: str, digest: str) -> list[RawReport]:
        """All reports for the image `repository@digest`, in a stable order; [] when there are none."""
        ...


class FolderSource:
    """Reports filed by digest under one directory. For `sha256:<hex>` both layouts are read:

        <root>/<hex>/*.json              one folder per image (e.g. trivy.json, grype.json, vex.cdx.json)
        <root>/sha256-<hex>*.json        flat (e.g. sha256-<hex>.trivy.json, sha256-<hex>-grype.json)

    Files are named by digest, never by tag or repository: the digest is the image's identity, so
    `repository` is not used. Hidden files (`.name`, e.g. partial uploads) are skipped. Reports are
    returned sorted by their path relative to `root`, which is also their `name`.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _hex(self, digest: str) -> str:
        if not isinstance(digest, str) or not DIGEST_RE.match(digest):
            raise ReportSourceError(f"not an image digest: {digest!r}")
        return digest.split(":", 1)[1]

    def describe(self, digest: str) -> str:
        """Where reports for `digest` are looked for (for "why blocked?" messages)."""
        hexd = self._hex(digest)
        return f"{self.root}/{hexd}/*.json or {self.root}/sha256-{hexd}*.json"

    def find(self, repository: str, digest: str) -> list[RawReport]:
        hexd = self._hex(digest)
        if not self.root.is_dir():
            raise ReportSourceError(f"report folder {self.root} does not exist or is not a directory")
        try:
            paths = set((self.root / hexd).glob("*.json")) | set(self.root.glob(f"sha256-{hexd}*.json"))
        except OSError as exc:
            raise ReportSourceError(f"cannot list {self.root}: {exc}") from None
        reports = []
        for path in sorted(paths, key=lambda p: p.relative_to(self.root).as_posix()):
            if path.name.startswith(".") or not path.is_file():
                continue
            name = path.relative_to(self.root).as_posix()
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise ReportSourceError(f"{name}: cannot read ({exc.strerror or exc})") from None
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise ReportSourceError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            reports.append(RawReport(name=name, text=text, data=data))
        return reports
