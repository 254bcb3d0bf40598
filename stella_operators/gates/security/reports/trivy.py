"""The Trivy JSON parser (`trivy image -f json`, SchemaVersion 2)."""

from __future__ import annotations

from typing import Any

from stella_operators.gates.security.reports._read import (
    _arr,
    _digest_of_ref,
    _Malformed,
    _obj,
    _severity,
    _text,
    _unique,
    _vex_statement,
    purl_package,
)
from stella_operators.gates.security.reports.model import Finding, ScanReport

# Result classes of a vulnerability scan (secret, config and license results say nothing about CVEs).
PACKAGE_CLASSES = ("os-pkgs", "lang-pkgs")


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
    results = _arr(doc.get("Results"), "Results")
    scanned_packages = False
    for i, result in enumerate(results):
        where = f"Results[{i}]"
        result = _obj(result, where)
        scanned_packages |= result.get("Class") in PACKAGE_CLASSES or "Vulnerabilities" in result
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
    incomplete = None
    if not results:  # Trivy lists every target it looked at, with or without vulnerabilities
        incomplete = "no Results: the scan did not complete, or found nothing to scan"
    elif not scanned_packages:
        incomplete = ("no package (os-pkgs / lang-pkgs) result: the vulnerability scanner did not run "
                      "(trivy image --scanners vuln)")
    version = _obj(doc.get("Trivy"), "Trivy").get("Version")
    return ScanReport(format="trivy", scanner="trivy", scanner_version=version if isinstance(version, str) else None,
                      artifact=artifact, image_digests=digests,
                      image_id=_text(meta.get("ImageID"), "Metadata.ImageID"),
                      created_at=_text(doc.get("CreatedAt"), "CreatedAt"), findings=tuple(findings),
                      incomplete=incomplete)
