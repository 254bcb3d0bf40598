"""The normalized model of a parsed scan report: severities, VEX states, errors, `Finding`, `ScanReport`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

SUPPORTED_FORMATS = "Trivy JSON (SchemaVersion 2), Grype JSON, CycloneDX JSON 1.4-1.6"
CYCLONEDX_SPEC_VERSIONS = ("1.4", "1.5", "1.6")

_DIGEST_IN_REF = re.compile(r"@(sha256:[0-9a-f]{64})\b")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.UNKNOWN: 0}
_SEVERITY_WORDS = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "important": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "negligible": Severity.LOW,   # Grype: Debian "unimportant"
    "info": Severity.LOW,         # CycloneDX
    "none": Severity.LOW,         # CycloneDX (CVSS 0.0)
    "unknown": Severity.UNKNOWN,
    "": Severity.UNKNOWN,
}

# VEX states that mean "this finding does not apply".
SUPPRESSING_STATES = frozenset({"not_affected", "false_positive", "resolved", "resolved_with_pedigree"})
# `not_affected` justifications that only say the vulnerable code is not reached.
REACHABILITY_JUSTIFICATIONS = frozenset({"code_not_reachable", "vulnerable_code_not_in_execute_path"})
_CDX_STATES = SUPPRESSING_STATES | {"exploitable", "in_triage"}
_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}


class ReportFormatError(ValueError):
    """A report that cannot be read: not JSON, an unknown format, or a malformed document."""

    def __init__(self, report: str, message: str):
        super().__init__(f"{report}: {message}")
        self.report = report
        self.message = message


class EnrichmentError(ValueError):
    """A KEV or EPSS file that cannot be read."""


class Finding(BaseModel):
    """One vulnerability in one package, as a report (or, after `merge_findings`, several) states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vuln_id: str
    aliases: tuple[str, ...] = ()
    severity: Severity = Severity.UNKNOWN
    package: str = ""                   # "" only for a VEX statement that names no package
    version: str | None = None
    fixed_version: str | None = None
    kev: bool | None = None             # None: the report does not say
    epss: float | None = None
    reachable: bool | None = None       # None: unknown (counts as reachable)
    suppressed: bool = False            # a VEX statement says it does not apply
    suppression_reason: str | None = None
    vex_state: str | None = None        # analysis state as stated (not_affected, exploitable, ...)

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.vuln_id, *self.aliases)

    @property
    def primary_id(self) -> str:
        """The CVE id when the finding has one (Grype reports GHSA ids with the CVE as an alias)."""
        return _primary_id(self.ids)

    @property
    def key(self) -> tuple[str, str]:
        """Identity for deduplication and for the new-critical delta: vulnerability + package."""
        return (self.primary_id, self.package.lower())

    @property
    def label(self) -> str:
        return f"{self.primary_id} ({self.package})" if self.package else self.primary_id


class ScanReport(BaseModel):
    """A parsed report: which tool, which image it says it scanned, and its findings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str                          # trivy | grype | cyclonedx
    scanner: str
    scanner_version: str | None = None
    artifact: str | None = None          # what was scanned, as the tool names it
    image_digests: tuple[str, ...] = ()  # manifest / index digests the report names (may be empty)
    image_id: str | None = None          # config digest, when the tool gives it
    created_at: str | None = None
    findings: tuple[Finding, ...] = ()
    # Why the document is not a completed vulnerability scan (no Trivy `Results`, no CycloneDX
    # `vulnerabilities` section, ...), or None. Such a report says nothing about the image's
    # vulnerabilities, so the gate must not count it as clean.
    incomplete: str | None = None

    @property
    def image_digest(self) -> str | None:
        return self.image_digests[0] if self.image_digests else None


def _primary_id(ids: Iterable[str]) -> str:
    ids = list(ids)
    for i in ids:
        if i.upper().startswith("CVE-"):
            return i.upper()
    return ids[0]
