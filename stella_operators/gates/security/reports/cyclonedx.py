"""The CycloneDX JSON 1.4 - 1.6 parser (vulnerabilities / VEX)."""

from __future__ import annotations

from typing import Any

from stella_operators.gates.security.reports._read import (
    _arr,
    _digest_of_ref,
    _flag,
    _Malformed,
    _obj,
    _probability,
    _severity,
    _text,
    _unique,
    _vex_statement,
    purl_package,
)
from stella_operators.gates.security.reports.model import (
    _CDX_STATES,
    CYCLONEDX_SPEC_VERSIONS,
    REACHABILITY_JUSTIFICATIONS,
    Finding,
    ScanReport,
    Severity,
)


def _cdx_components(items: list[Any], where: str, out: dict[str, dict[str, Any]]) -> None:
    for i, c in enumerate(items):
        c = _obj(c, f"{where}[{i}]")
        if isinstance(c.get("bom-ref"), str):
            out[c["bom-ref"]] = c
        _cdx_components(_arr(c.get("components"), f"{where}[{i}].components"), f"{where}[{i}].components", out)


def _cdx_package(c: dict[str, Any]) -> tuple[str, str | None]:
    from_purl = purl_package(c.get("purl")) if c.get("purl") else None
    if from_purl:
        return from_purl[0], v if isinstance(v := c.get("version"), str) else from_purl[1]
    name = n if isinstance(n := c.get("name"), str) else ""
    group = g if isinstance(g := c.get("group"), str) else ""
    return (f"{group}:{name}" if group else name), v if isinstance(v := c.get("version"), str) else None


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
                elif from_purl := purl_package(ref):
                    item["package"], item["version"] = from_purl
                else:
                    item["package"] = ref
                if "fixed_version" not in item:
                    fixed = [v for x in _arr(a.get("versions"), f"{where}.affects[].versions")
                             if isinstance(x, dict) and x.get("status") == "unaffected"
                             and isinstance(v := x.get("version"), str) and v != item.get("version")]
                    item["fixed_version"] = ", ".join(fixed) or None
            findings.append(Finding(**item))

    incomplete = None
    if "vulnerabilities" not in doc:  # an SBOM is an inventory: it says nothing about vulnerabilities
        incomplete = ("no vulnerabilities section: an SBOM, not a vulnerability scan (emit one with e.g. "
                      "trivy image -f cyclonedx --scanners vuln, or grype -o cyclonedx-json)")
    elif not _arr(doc.get("components"), "components") and not findings:
        incomplete = "lists neither components nor vulnerabilities: nothing was scanned"
    scanner = tool.get("name") if isinstance(tool.get("name"), str) else "cyclonedx"
    return ScanReport(format="cyclonedx", scanner=scanner,
                      scanner_version=tool.get("version") if isinstance(tool.get("version"), str) else None,
                      artifact=subject.get("name") if isinstance(subject.get("name"), str) else None,
                      image_digests=digests, image_id=image_id,
                      created_at=_text(meta.get("timestamp"), "metadata.timestamp"), findings=tuple(findings),
                      incomplete=incomplete)
