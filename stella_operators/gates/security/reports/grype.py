"""The Grype JSON parser (`grype -o json`)."""

from __future__ import annotations

from typing import Any

from stella_operators.gates.security.reports._read import (
    _arr,
    _digest_of_ref,
    _obj,
    _probability,
    _severity,
    _text,
    _unique,
    _vex_statement,
    purl_package,
)
from stella_operators.gates.security.reports.model import SUPPRESSING_STATES, Finding, ScanReport


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
    stype = _text(source.get("type"), "source.type")
    incomplete = f"scanned a {stype}, not a container image" if stype not in (None, "image") else None
    findings = [_grype_finding(m, f"matches[{i}]") for i, m in enumerate(_arr(doc.get("matches"), "matches"))]
    for i, m in enumerate(_arr(doc.get("ignoredMatches"), "ignoredMatches")):
        where = f"ignoredMatches[{i}]"
        f = _grype_finding(m, where)
        for rule in _arr(_obj(m, where).get("appliedIgnoreRules"), f"{where}.appliedIgnoreRules"):
            rule = _obj(rule, f"{where}.appliedIgnoreRules[]")
            vex_status = rule.get("vex-status")
            status = "resolved" if vex_status == "fixed" else vex_status
            if rule.get("namespace") == "vex" and status in SUPPRESSING_STATES:
                f = f.model_copy(update=_vex_statement(status, rule.get("vex-justification") or None, "grype VEX"))
                break
        findings.append(f)  # an ignore rule that is not VEX does not suppress: the finding counts
    return ScanReport(format="grype", scanner=_text(desc.get("name"), "descriptor.name") or "grype",
                      scanner_version=_text(desc.get("version"), "descriptor.version"), artifact=artifact,
                      image_digests=digests, image_id=image_id,
                      created_at=_text(desc.get("timestamp"), "descriptor.timestamp"), findings=tuple(findings),
                      incomplete=incomplete)
