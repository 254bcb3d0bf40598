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

import csv
import gzip
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

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

    @property
    def image_digest(self) -> str | None:
        return self.image_digests[0] if self.image_digests else None


# --------------------------------------------------------------------------------------------
# reading helpers


def _primary_id(ids: Iterable[str]) -> str:
    ids = list(ids)
    for i in ids:
        if i.upper().startswith("CVE-"):
            return i.upper()
    return ids[0]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(data: str | bytes, report: str) -> Any:
    if isinstance(data, bytes):
        if data[:2] == b"\x1f\x8b":
            raise ReportFormatError(report, "gzip-compressed; store the report uncompressed")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ReportFormatError(report, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = data.lstrip("\ufeff")
    head = text.lstrip()[:1]
    if not head:
        raise ReportFormatError(report, "empty file")
    if head == "<":
        raise ReportFormatError(report, f"looks like XML; only JSON reports are supported ({SUPPORTED_FORMATS})")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ReportFormatError(report, f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:
        raise ReportFormatError(report, f"not valid JSON ({exc})") from None


class _Malformed(Exception):
    pass


def _obj(v: Any, where: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _Malformed(f"{where} must be an object, got {type(v).__name__}")
    return v


def _arr(v: Any, where: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Malformed(f"{where} must be an array, got {type(v).__name__}")
    return v


def _text(v: Any, where: str, *, required: bool = False) -> str | None:
    if v is None or v == "":
        if required:
            raise _Malformed(f"{where} is missing")
        return None
    if not isinstance(v, str):
        raise _Malformed(f"{where} must be a string, got {type(v).__name__}")
    return v


def _severity(v: Any, where: str) -> Severity:
    if v is None:
        return Severity.UNKNOWN
    if not isinstance(v, str) or v.strip().lower() not in _SEVERITY_WORDS:
        raise _Malformed(f"{where}: unrecognized severity {v!r}")
    return _SEVERITY_WORDS[v.strip().lower()]


def _probability(v: Any, where: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _Malformed(f"{where}: {v!r} is not a number") from None
    if isinstance(v, bool) or not math.isfinite(x) or not 0.0 <= x <= 1.0:
        raise _Malformed(f"{where}: EPSS {v} is not a probability between 0 and 1")
    return x


def _flag(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise _Malformed(f"{where}: {v!r} is not true/false")


def _digest_of_ref(ref: Any) -> str | None:
    """`repo@sha256:...` (or a bare digest, or a purl with an encoded digest) -> `sha256:...`."""
    if not isinstance(ref, str):
        return None
    ref = unquote(ref)
    if _DIGEST.match(ref):
        return ref
    m = _DIGEST_IN_REF.search(ref)
    return m.group(1) if m else None


def _unique(items: Iterable[str | None]) -> tuple[str, ...]:
    out: list[str] = []
    for i in items:
        if i and i not in out:
            out.append(i)
    return tuple(out)


def purl_package(purl: str) -> tuple[str, str | None] | None:
    """Package name (as scanners print it) and version from a package URL, or None if not a purl.

    `pkg:maven/org.x/lib@1` -> `org.x:lib`; `pkg:npm/%40scope/lib` -> `@scope/lib`;
    `pkg:golang/golang.org/x/net` -> `golang.org/x/net`; others -> the name. A deb `epoch`
    qualifier is put back in front of the version (`1:1.2.13`), as dpkg and Trivy write it.
    """
    if not isinstance(purl, str) or not purl.startswith("pkg:"):
        return None
    body = purl[4:].split("#", 1)[0]
    body, _, qualifiers = body.partition("?")
    path, at, version = body.rpartition("@")
    if not at:
        path, version = body, ""
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if len(parts) < 2:
        return None
    ptype, namespace, name = parts[0].lower(), parts[1:-1], parts[-1]
    if ptype == "maven" and namespace:
        pkg = ":".join(["/".join(namespace) if len(namespace) > 1 else namespace[0], name])
    elif ptype in ("npm", "golang", "github", "composer", "swift") and namespace:
        pkg = "/".join([*namespace, name])
    else:
        pkg = name
    ver = unquote(version) or None
    if ver and ptype == "deb":
        for q in qualifiers.split("&"):
            k, _, v = q.partition("=")
            if k == "epoch" and v and v != "0":
                ver = f"{unquote(v)}:{ver}"
    return pkg, ver


def _vex_statement(state: str | None, justification: str | None, source: str) -> dict[str, Any]:
    """suppressed / reachable / reason for a VEX state + justification (see the module docstring)."""
    if state not in SUPPRESSING_STATES:
        return {"suppressed": False, "suppression_reason": None, "vex_state": state}
    if state == "not_affected" and justification in REACHABILITY_JUSTIFICATIONS:
        return {"suppressed": False, "suppression_reason": None, "vex_state": state, "reachable": False}
    reason = f"{source}: {state}" + (f" ({justification})" if justification else "")
    return {"suppressed": True, "suppression_reason": reason, "vex_state": state}


# --------------------------------------------------------------------------------------------
# format detection


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


# --------------------------------------------------------------------------------------------
# Trivy


def _trivy_finding(v: Any, where: str) -> Finding:
    v = _obj(v, where)
    vid = _text(v.get("VulnerabilityID"), f"{where}.VulnerabilityID", required=True)
    purl = _obj(v.get("PkgIdentifier"), f"{where}.PkgIdentifier").get("PURL")
    from_purl = purl_package(purl) if purl else None
    name = _text(v.get("PkgName"), f"{where}.PkgName", required=from_purl is None)
    return Finding(
        vuln_id=vid,
        severity=_severity(v.get("Severity"), f"{where}.Severity"),
        package=from_purl[0] if from_purl else name,
        version=_text(v.get("InstalledVersion"), f"{where}.InstalledVersion"),
        fixed_version=_text(v.get("FixedVersion"), f"{where}.FixedVersion"),
    )


def _parse_trivy(doc: dict[str, Any]) -> ScanReport:
    if doc.get("SchemaVersion") != 2:
        raise _Malformed(f"unsupported Trivy SchemaVersion {doc.get('SchemaVersion')!r} (expected 2)")
    meta = _obj(doc.get("Metadata"), "Metadata")
    artifact = _text(doc.get("ArtifactName"), "ArtifactName")
    digests = _unique([*(_digest_of_ref(r) for r in _arr(meta.get("RepoDigests"), "Metadata.RepoDigests")),
                       _digest_of_ref(artifact)])
    findings: list[Finding] = []
    for i, result in enumerate(_arr(doc.get("Results"), "Results")):
        where = f"Results[{i}]"
        result = _obj(result, where)
        for j, v in enumerate(_arr(result.get("Vulnerabilities"), f"{where}.Vulnerabilities")):
            findings.append(_trivy_finding(v, f"{where}.Vulnerabilities[{j}]"))
        for key in ("ExperimentalModifiedFindings", "ModifiedFindings"):
            for j, m in enumerate(_arr(result.get(key), f"{where}.{key}")):
                m = _obj(m, f"{where}.{key}[{j}]")
                if m.get("Type", "vulnerability") != "vulnerability":
                    continue
                f = _trivy_finding(m.get("Finding"), f"{where}.{key}[{j}].Finding")
                status = m.get("Status")
                if status == "not_affected":  # a VEX statement; "ignored" (ignore file) still counts
                    source = f"trivy VEX ({m['Source']})" if m.get("Source") else "trivy VEX"
                    f = f.model_copy(update=_vex_statement(status, m.get("Statement") or None, source))
                findings.append(f)
    version = _obj(doc.get("Trivy"), "Trivy").get("Version")
    return ScanReport(format="trivy", scanner="trivy", scanner_version=version if isinstance(version, str) else None,
                      artifact=artifact, image_digests=digests,
                      image_id=_text(meta.get("ImageID"), "Metadata.ImageID"),
                      created_at=_text(doc.get("CreatedAt"), "CreatedAt"), findings=tuple(findings))


# --------------------------------------------------------------------------------------------
# Grype


def _grype_finding(m: Any, where: str) -> Finding:
    m = _obj(m, where)
    v = _obj(m.get("vulnerability"), f"{where}.vulnerability")
    art = _obj(m.get("artifact"), f"{where}.artifact")
    vid = _text(v.get("id"), f"{where}.vulnerability.id", required=True)
    aliases = _unique(_obj(r, f"{where}.relatedVulnerabilities[]").get("id")
                      for r in _arr(m.get("relatedVulnerabilities"), f"{where}.relatedVulnerabilities"))
    fix = _obj(v.get("fix"), f"{where}.vulnerability.fix")
    fixed = [x for x in _arr(fix.get("versions"), f"{where}.vulnerability.fix.versions") if isinstance(x, str) and x]
    scores = [_probability(_obj(e, f"{where}.vulnerability.epss[]").get("epss"), f"{where}.vulnerability.epss[]")
              for e in _arr(v.get("epss"), f"{where}.vulnerability.epss")]
    from_purl = purl_package(art.get("purl")) if art.get("purl") else None
    name = _text(art.get("name"), f"{where}.artifact.name", required=from_purl is None)
    return Finding(
        vuln_id=vid,
        aliases=tuple(a for a in aliases if a != vid),
        severity=_severity(v.get("severity"), f"{where}.vulnerability.severity"),
        package=from_purl[0] if from_purl else name,
        version=_text(art.get("version"), f"{where}.artifact.version"),
        fixed_version=", ".join(fixed) or None,
        kev=True if _arr(v.get("knownExploited"), f"{where}.vulnerability.knownExploited") else None,
        epss=max(scores) if scores else None,
    )


def _parse_grype(doc: dict[str, Any]) -> ScanReport:
    desc = _obj(doc.get("descriptor"), "descriptor")
    source = _obj(doc.get("source"), "source")
    target = source.get("target")
    digests: tuple[str, ...] = ()
    image_id = artifact = None
    if isinstance(target, dict):
        digests = _unique([_digest_of_ref(target.get("manifestDigest")),
                           *(_digest_of_ref(r) for r in _arr(target.get("repoDigests"), "source.target.repoDigests"))])
        image_id = _text(target.get("imageID"), "source.target.imageID")
        artifact = _text(target.get("userInput"), "source.target.userInput")
    elif isinstance(target, str):
        artifact = target
    findings = [_grype_finding(m, f"matches[{i}]") for i, m in enumerate(_arr(doc.get("matches"), "matches"))]
    for i, m in enumerate(_arr(doc.get("ignoredMatches"), "ignoredMatches")):
        where = f"ignoredMatches[{i}]"
        f = _grype_finding(m, where)
        for rule in _arr(_obj(m, where).get("appliedIgnoreRules"), f"{where}.appliedIgnoreRules"):
            rule = _obj(rule, f"{where}.appliedIgnoreRules[]")
            status = {"fixed": "resolved"}.get(rule.get("vex-status"), rule.get("vex-status"))
            if rule.get("namespace") == "vex" and status in SUPPRESSING_STATES:
                f = f.model_copy(update=_vex_statement(status, rule.get("vex-justification") or None, "grype VEX"))
                break
        findings.append(f)  # an ignore rule that is not VEX does not suppress: the finding counts
    return ScanReport(format="grype", scanner=_text(desc.get("name"), "descriptor.name") or "grype",
                      scanner_version=_text(desc.get("version"), "descriptor.version"), artifact=artifact,
                      image_digests=digests, image_id=image_id,
                      created_at=_text(desc.get("timestamp"), "descriptor.timestamp"), findings=tuple(findings))


# --------------------------------------------------------------------------------------------
# CycloneDX


def _cdx_components(items: list[Any], where: str, out: dict[str, dict[str, Any]]) -> None:
    for i, c in enumerate(items):
        c = _obj(c, f"{where}[{i}]")
        if isinstance(c.get("bom-ref"), str):
            out[c["bom-ref"]] = c
        _cdx_components(_arr(c.get("components"), f"{where}[{i}].components"), f"{where}[{i}].components", out)


def _cdx_package(c: dict[str, Any]) -> tuple[str, str | None]:
    from_purl = purl_package(c.get("purl")) if c.get("purl") else None
    if from_purl:
        return from_purl[0], c.get("version") if isinstance(c.get("version"), str) else from_purl[1]
    name = c.get("name") if isinstance(c.get("name"), str) else ""
    group = c.get("group") if isinstance(c.get("group"), str) else ""
    return (f"{group}:{name}" if group else name), c.get("version") if isinstance(c.get("version"), str) else None


def _cdx_properties(v: dict[str, Any], where: str) -> dict[str, Any]:
    """kev / epss / reachable / fixed_version from `<namespace>:<name>` properties."""
    out: dict[str, Any] = {}
    for p in _arr(v.get("properties"), f"{where}.properties"):
        p = _obj(p, f"{where}.properties[]")
        name, value = p.get("name"), p.get("value")
        if not isinstance(name, str) or value is None:
            continue
        leaf = name.rsplit(":", 1)[-1].strip().lower().replace("-", "_")
        if leaf in ("kev", "known_exploited", "knownexploited", "cisa_kev"):
            out["kev"] = _flag(value, f"{where} property {name}")
        elif leaf in ("epss", "epss_score"):
            out["epss"] = _probability(value, f"{where} property {name}")
        elif leaf in ("reachable", "reachability"):
            out["reachable"] = _flag(value, f"{where} property {name}")
        elif leaf in ("fixed_version", "fixedversion") and isinstance(value, str) and value:
            out["fixed_version"] = value
    return out


def _parse_cyclonedx(doc: dict[str, Any]) -> ScanReport:
    spec = doc.get("specVersion")
    if spec not in CYCLONEDX_SPEC_VERSIONS:
        supported = ", ".join(CYCLONEDX_SPEC_VERSIONS)
        raise _Malformed(f"unsupported CycloneDX specVersion {spec!r} (supported: {supported})")
    meta = _obj(doc.get("metadata"), "metadata")
    tools = meta.get("tools")
    tool_list = _arr(tools.get("components"), "metadata.tools.components") if isinstance(tools, dict) \
        else _arr(tools, "metadata.tools")
    tool = _obj(tool_list[0], "metadata.tools[0]") if tool_list else {}
    subject = _obj(meta.get("component"), "metadata.component")
    subject_props = {p.get("name"): p.get("value")
                     for p in _arr(subject.get("properties"), "metadata.component.properties") if isinstance(p, dict)}
    # The subject's purl (pkg:oci/...@sha256:...) names the manifest digest; Trivy adds RepoDigest
    # properties. `version` is not used: tools differ on whether it holds the image or config digest.
    digests = _unique([_digest_of_ref(subject.get("purl")),
                       *(_digest_of_ref(v) for k, v in subject_props.items()
                         if isinstance(k, str) and k.lower().endswith(":repodigest"))])
    image_id = next((v for k, v in subject_props.items() if isinstance(k, str) and k.lower().endswith(":imageid")
                     and isinstance(v, str)), None)

    components: dict[str, dict[str, Any]] = {}
    _cdx_components(_arr(doc.get("components"), "components"), "components", components)

    findings: list[Finding] = []
    for i, v in enumerate(_arr(doc.get("vulnerabilities"), "vulnerabilities")):
        where = f"vulnerabilities[{i}]"
        v = _obj(v, where)
        vid = _text(v.get("id"), f"{where}.id", required=True)
        aliases = _unique(_obj(r, f"{where}.references[]").get("id")
                          for r in _arr(v.get("references"), f"{where}.references"))
        severities = [_severity(_obj(r, f"{where}.ratings[]").get("severity"), f"{where}.ratings[].severity")
                      for r in _arr(v.get("ratings"), f"{where}.ratings")]
        analysis = _obj(v.get("analysis"), f"{where}.analysis")
        state = _text(analysis.get("state"), f"{where}.analysis.state")
        if state is not None and state not in _CDX_STATES:
            raise _Malformed(f"{where}.analysis.state: unknown state {state!r}")
        justification = _text(analysis.get("justification"), f"{where}.analysis.justification")
        base: dict[str, Any] = {
            "vuln_id": vid,
            "aliases": tuple(a for a in aliases if isinstance(a, str) and a != vid),
            "severity": max(severities, key=lambda s: s.rank) if severities else Severity.UNKNOWN,
        }
        base.update(_vex_statement(state, justification, "CycloneDX VEX"))
        if justification in REACHABILITY_JUSTIFICATIONS:
            base["reachable"] = False
        base.update(_cdx_properties(v, where))  # an explicit property wins over the justification

        affects = _arr(v.get("affects"), f"{where}.affects") or [None]
        for a in affects:
            item = dict(base)
            if a is not None:
                a = _obj(a, f"{where}.affects[]")
                ref = _text(a.get("ref"), f"{where}.affects[].ref", required=True)
                if ref in components:
                    item["package"], item["version"] = _cdx_package(components[ref])
                elif purl_package(ref):
                    item["package"], item["version"] = purl_package(ref)  # type: ignore[misc]
                else:
                    item["package"] = ref
                if "fixed_version" not in item:
                    fixed = [x.get("version") for x in _arr(a.get("versions"), f"{where}.affects[].versions")
                             if isinstance(x, dict) and x.get("status") == "unaffected"
                             and isinstance(x.get("version"), str) and x.get("version") != item.get("version")]
                    item["fixed_version"] = ", ".join(fixed) or None
            findings.append(Finding(**item))

    scanner = tool.get("name") if isinstance(tool.get("name"), str) else "cyclonedx"
    return ScanReport(format="cyclonedx", scanner=scanner,
                      scanner_version=tool.get("version") if isinstance(tool.get("version"), str) else None,
                      artifact=subject.get("name") if isinstance(subject.get("name"), str) else None,
                      image_digests=digests, image_id=image_id,
                      created_at=_text(meta.get("timestamp"), "metadata.timestamp"), findings=tuple(findings))


_PARSERS = {"trivy": _parse_trivy, "grype": _parse_grype, "cyclonedx": _parse_cyclonedx}


# --------------------------------------------------------------------------------------------
# enrichment files


class KevCatalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog_version: str | None = None
    date_released: str | None = None
    cves: frozenset[str] = frozenset()


class EpssScores(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str | None = None
    score_date: str | None = None
    scores: dict[str, float] = {}


def _enrichment_text(data: str | bytes, what: str) -> str:
    if isinstance(data, bytes):
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise EnrichmentError(f"{what}: broken gzip data ({exc})") from None
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise EnrichmentError(f"{what}: not UTF-8 text ({exc.reason})") from None
    return data.lstrip("\ufeff")


def parse_kev(data: str | bytes) -> KevCatalog:
    """The CISA KEV catalogue JSON: `{"catalogVersion", "dateReleased", "vulnerabilities": [{"cveID"}]}`."""
    text = _enrichment_text(data, "KEV catalogue")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EnrichmentError(f"KEV catalogue: not valid JSON ({exc.msg}: line {exc.lineno})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("vulnerabilities"), list):
        raise EnrichmentError('KEV catalogue: expected the CISA format {"vulnerabilities": [{"cveID": ...}]}')
    cves = set()
    for i, v in enumerate(doc["vulnerabilities"]):
        cve = v.get("cveID") if isinstance(v, dict) else None
        if not isinstance(cve, str) or not cve:
            raise EnrichmentError(f"KEV catalogue: vulnerabilities[{i}] has no cveID")
        cves.add(cve.strip().upper())
    version, released = doc.get("catalogVersion"), doc.get("dateReleased")
    return KevCatalog(catalog_version=version if isinstance(version, str) else None,
                      date_released=released if isinstance(released, str) else None, cves=frozenset(cves))


def parse_epss(data: str | bytes) -> EpssScores:
    """FIRST's EPSS CSV (optionally gzip): `#model_version:...,score_date:...` then `cve,epss,percentile`."""
    text = _enrichment_text(data, "EPSS file")
    lines = text.splitlines()
    meta: dict[str, str] = {}
    first_data_line = 2
    while lines and lines[0].startswith("#"):
        first_data_line += 1
        for part in lines.pop(0)[1:].split(","):
            k, sep, v = part.partition(":")
            if sep:
                meta[k.strip()] = v.strip()
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "cve" not in fields or "epss" not in fields:
        raise EnrichmentError("EPSS file: expected a header line 'cve,epss,percentile'")
    reader.fieldnames = fields
    scores: dict[str, float] = {}
    for n, row in enumerate(reader, start=first_data_line):
        cve = (row.get("cve") or "").strip().upper()
        if not cve:
            continue
        try:
            scores[cve] = _probability((row.get("epss") or "").strip(), f"line {n}")
        except _Malformed as exc:
            raise EnrichmentError(f"EPSS file: {exc}") from None
    return EpssScores(model_version=meta.get("model_version"), score_date=meta.get("score_date"), scores=scores)


# --------------------------------------------------------------------------------------------
# merging and enrichment (used by the gate's pure decision)


def merge_findings(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per vulnerability + package for one digest, however many reports named it.

    Severity: the highest stated. KEV/reachable: `True` from any source wins, then `False`,
    else unknown. EPSS: the highest. Suppressed: when any VEX statement suppresses it and none
    says `exploitable`. A VEX statement that names no package applies to every package with
    that vulnerability. Output order is deterministic (severity, then id, then package).
    """
    findings = list(findings)
    groups: dict[tuple[str, str], list[Finding]] = {}
    unnamed: dict[str, list[Finding]] = {}
    for f in findings:
        if f.package:
            groups.setdefault(f.key, []).append(f)
        else:
            unnamed.setdefault(f.primary_id, []).append(f)
    for vid, statements in unnamed.items():
        targets = [k for k in groups if k[0] == vid]
        for k in targets:
            groups[k].extend(statements)
        if not targets:
            groups[(vid, "")] = statements
    merged = [_merge(members) for members in groups.values()]
    return sorted(merged, key=lambda f: (-f.severity.rank, f.primary_id, f.package.lower()))


def _tri(values: Iterable[bool | None]) -> bool | None:
    values = list(values)
    return True if True in values else (False if False in values else None)


def _merge(members: list[Finding]) -> Finding:
    ids = _unique(i for f in members for i in f.ids)
    primary = _primary_id(ids)
    states = [f.vex_state for f in members if f.vex_state]
    suppressors = [f for f in members if f.suppressed]
    suppressed = bool(suppressors) and "exploitable" not in states
    epss = [f.epss for f in members if f.epss is not None]
    return Finding(
        vuln_id=primary,
        aliases=tuple(sorted(i for i in ids if i != primary)),
        severity=max((f.severity for f in members), key=lambda s: s.rank),
        package=next((f.package for f in members if f.package), ""),
        version=next((f.version for f in members if f.version), None),
        fixed_version=next((f.fixed_version for f in members if f.fixed_version), None),
        kev=_tri(f.kev for f in members),
        epss=max(epss) if epss else None,
        reachable=_tri(f.reachable for f in members),
        suppressed=suppressed,
        suppression_reason=suppressors[0].suppression_reason if suppressed else None,
        vex_state="exploitable" if "exploitable" in states else
        (suppressors[0].vex_state if suppressed else (states[0] if states else None)),
    )


def enrich(findings: Iterable[Finding], *, kev: Iterable[str] = (),
           epss: Mapping[str, float] | None = None) -> list[Finding]:
    """Mark KEV-listed ids and raise EPSS to the enrichment score (the higher of report and file wins)."""
    kev_ids = {k.upper() for k in kev}
    epss = {k.upper(): v for k, v in (epss or {}).items()}
    out = []
    for f in findings:
        ids = [i.upper() for i in f.ids]
        update: dict[str, Any] = {}
        if any(i in kev_ids for i in ids):
            update["kev"] = True
        scores = [epss[i] for i in ids if i in epss] + ([f.epss] if f.epss is not None else [])
        if scores and max(scores) != f.epss:
            update["epss"] = max(scores)
        out.append(f.model_copy(update=update) if update else f)
    return out
