"""Scan reports, parsed into one normalized model.

Input formats are detected from the document itself (`parse_report`):

* **Trivy JSON** (`trivy image -f json`, `SchemaVersion` 2): `Results[].Vulnerabilities[]`;
  the image is named by `Metadata.RepoDigests` (`ImageID` is the config digest, kept apart).
  Findings a VEX document suppressed (`--show-suppressed`, `ExperimentalModifiedFindings` /
  `ModifiedFindings` with `Status: not_affected`) are kept, marked `suppressed`.
* **Grype JSON** (`grype -o json`): `matches[]` with `vulnerability` (`id`, `severity`, `fix`,
  and in newer Grype `epss[]`, `knownExploited[]`; `risk` is Grype's own composite score, not an
  EPSS probability, so it is not used) and `artifact`; related CVE ids become aliases. The image
  is named by `source.target.manifestDigest` / `repoDigests`. `ignoredMatches[]` whose applied
  rule is a VEX statement (`namespace: vex`, `vex-status` not_affected / fixed) are kept,
  marked `suppressed`.
* **CycloneDX JSON 1.4 - 1.6** with vulnerabilities / VEX: `vulnerabilities[]` with `ratings[]`,
  `affects[].ref` (a component `bom-ref`, or a purl) and `analysis.state` /
  `analysis.justification`. Properties named `<namespace>:kev`, `<namespace>:epss`,
  `<namespace>:reachable` (any namespace, e.g. `stella:kev`) carry KEV, EPSS and reachability
  added by an enrichment step.

Completeness (`ScanReport.incomplete`, a reason or None): a Trivy report without `Results`, or
whose results hold no package (os-pkgs / lang-pkgs) result, a Grype report of anything but an
image, and a CycloneDX document without a `vulnerabilities` section (an SBOM) or with neither
components nor vulnerabilities are not completed vulnerability scans; the gate refuses them.

Suppression honours VEX only: CycloneDX `not_affected`, `false_positive`, `resolved`
(`resolved_with_pedigree`); Trivy/Grype VEX-suppressed findings likewise. Scanner ignore files
(`.trivyignore`, Grype ignore rules that are not VEX) do not suppress: such findings still count.

Reachability: a `not_affected` statement whose *only* argument is reachability (justification
`code_not_reachable`, or OpenVEX `vulnerable_code_not_in_execute_path`) is recorded as
`reachable=False` and **not** as suppressed: it is a reachability claim, and whether reachability
claims are honoured is the gate's `reachable_only` setting. A `reachable` property does the same.

Enrichment inputs: `parse_kev` reads the CISA KEV catalogue JSON
(`{"vulnerabilities": [{"cveID": ...}]}`), `parse_epss` reads FIRST's EPSS CSV (a `#model_version`
comment line, then `cve,epss,percentile`). `merge_findings` deduplicates one digest's findings
(same vulnerability + package found by several scanners) and `enrich` applies KEV/EPSS.
Everything here is pure: text in, models out.
"""

from __future__ import annotations

from typing import Any

from stella_operators.gates.security.reports._read import _load_json, _Malformed, purl_package
from stella_operators.gates.security.reports.cyclonedx import _parse_cyclonedx
from stella_operators.gates.security.reports.enrichment import EpssScores, KevCatalog, parse_epss, parse_kev
from stella_operators.gates.security.reports.grype import _parse_grype
from stella_operators.gates.security.reports.merge import enrich, merge_findings
from stella_operators.gates.security.reports.model import (
    CYCLONEDX_SPEC_VERSIONS,
    REACHABILITY_JUSTIFICATIONS,
    SUPPORTED_FORMATS,
    SUPPRESSING_STATES,
    EnrichmentError,
    Finding,
    ReportFormatError,
    ScanReport,
    Severity,
)
from stella_operators.gates.security.reports.trivy import _parse_trivy

__all__ = [
    "CYCLONEDX_SPEC_VERSIONS",
    "REACHABILITY_JUSTIFICATIONS",
    "SUPPORTED_FORMATS",
    "SUPPRESSING_STATES",
    "EnrichmentError",
    "EpssScores",
    "Finding",
    "KevCatalog",
    "ReportFormatError",
    "ScanReport",
    "Severity",
    "detect_format",
    "enrich",
    "merge_findings",
    "parse_epss",
    "parse_kev",
    "parse_report",
    "purl_package",
]


def detect_format(doc: Any, report: str = "report") -> str:
    """`trivy`, `grype` or `cyclonedx`; anything else raises `ReportFormatError` saying what it looks like."""
    if not isinstance(doc, dict):
        raise ReportFormatError(report, f"the top level is a JSON {type(doc).__name__}, not an object; "
                                        f"expected {SUPPORTED_FORMATS}")
    if doc.get("bomFormat") == "CycloneDX":
        return "cyclonedx"
    if "SchemaVersion" in doc and ("Results" in doc or "ArtifactName" in doc):
        return "trivy"
    if isinstance(doc.get("matches"), list) and ("descriptor" in doc or "source" in doc):
        return "grype"
    if "spdxVersion" in doc:
        hint = "an SPDX SBOM (it carries no vulnerability findings)"
    elif "runs" in doc and "version" in doc:
        hint = "SARIF (not supported: emit the scanner's native JSON)"
    elif "@context" in doc and "statements" in doc:
        hint = "an OpenVEX document (not supported: use CycloneDX VEX, or pass it to the scanner with --vex)"
    else:
        keys = ", ".join(sorted(map(str, doc))[:8]) or "none"
        hint = f"an unrecognized document (top-level keys: {keys})"
    raise ReportFormatError(report, f"{hint}; expected {SUPPORTED_FORMATS}")


def parse_report(data: str | bytes, *, name: str = "report") -> ScanReport:
    """Parse one report, detecting its format. Raises `ReportFormatError` with the reason."""
    doc = _load_json(data, name)
    fmt = detect_format(doc, name)
    try:
        return _PARSERS[fmt](doc)
    except _Malformed as exc:
        raise ReportFormatError(name, f"malformed {fmt} report: {exc}") from None


_PARSERS = {"trivy": _parse_trivy, "grype": _parse_grype, "cyclonedx": _parse_cyclonedx}
