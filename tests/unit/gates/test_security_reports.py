"""Scan report parsing: Trivy / Grype / CycloneDX VEX into one model, enrichment files, dedup."""

import gzip
import json
from pathlib import Path

import pytest

from stella_operators.gates.security.reports import (
    EnrichmentError,
    Finding,
    ReportFormatError,
    Severity,
    detect_format,
    enrich,
    merge_findings,
    parse_epss,
    parse_kev,
    parse_report,
    purl_package,
)
from stella_operators.gates.security.sources import FolderSource, RawReport, ReportSourceError

SCANS = Path(__file__).resolve().parents[2] / "fixtures" / "scans"
D_WEB1 = "sha256:61140036715eff25521c25fa20e5a926dfdbe9e191ef395846d084be7edc29bf"
D_WEB2 = "sha256:bb9a421e64b5ab014a5d00943a6f233412a47fbc8fec2639d7fddf5384bdbfcb"
D_API1 = "sha256:9e32b01919ca08063145b7a0d9ab490410f945fa5a3fdd18f9347135cdd67f8c"


def load(name: str) -> str:
    return (SCANS / name).read_text()


def doc(name: str) -> dict:
    return json.loads(load(name))


def by_label(findings) -> dict[str, Finding]:
    out = {f.label: f for f in findings}
    assert len(out) == len(findings), "labels are unique in these fixtures"
    return out


# ------------------------------------------------------------------------------------- Trivy


def test_trivy_report():
    r = parse_report(load("trivy-web-1.json"), name="trivy-web-1.json")
    assert (r.format, r.scanner) == ("trivy", "trivy")
    assert r.image_digests == (D_WEB1,) and r.image_digest == D_WEB1
    assert r.image_id == "sha256:f16cdb9fe545293b877f08583761cd2fb0787dfd1529195ea2b5b921929e44ba"
    assert r.created_at == "2025-06-02T09:14:27.384112573Z"
    f = by_label(r.findings)
    assert set(f) == {"CVE-2023-45853 (zlib1g)", "CVE-2024-6119 (libssl3)", "CVE-2024-6119 (openssl)",
                      "CVE-2023-50495 (libncursesw6)", "CVE-2011-3374 (libapt-pkg6.0)", "CVE-2024-34069 (werkzeug)"}
    z = f["CVE-2023-45853 (zlib1g)"]
    assert (z.severity, z.version, z.fixed_version) == (Severity.CRITICAL, "1:1.2.13.dfsg-1", None)
    assert (z.kev, z.epss, z.reachable, z.suppressed) == (None, None, None, False)
    ssl = f["CVE-2024-6119 (libssl3)"]
    assert (ssl.severity, ssl.fixed_version) == (Severity.HIGH, "3.0.14-1~deb12u2")
    assert f["CVE-2011-3374 (libapt-pkg6.0)"].severity == Severity.LOW
    # the package name comes from the purl (pypi names are normalised), the version as installed
    assert f["CVE-2024-34069 (werkzeug)"].version == "3.0.1"


def test_trivy_vex_suppressed_findings_are_kept_and_marked():
    r = parse_report(load("trivy-web-2.json"))
    f = by_label(r.findings)
    expat = f["CVE-2023-52425 (libexpat1)"]
    assert expat.suppressed and expat.vex_state == "not_affected"
    assert "not_affected" in expat.suppression_reason and "vulnerable_code_not_present" in expat.suppression_reason
    assert sum(x.suppressed for x in r.findings) == 1


def test_trivy_ignored_finding_is_not_a_vex_suppression():
    d = doc("trivy-web-2.json")
    d["Results"][0]["ExperimentalModifiedFindings"][0].update(Status="ignored", Source=".trivyignore")
    f = by_label(parse_report(json.dumps(d)).findings)
    assert not f["CVE-2023-52425 (libexpat1)"].suppressed


def test_trivy_clean_result_without_vulnerabilities():
    r = parse_report(load("trivy-worker-1.json"))
    assert r.findings == () and r.image_digest.startswith("sha256:4aa21c28")


# ------------------------------------------------------------------------------------- Grype


def test_grype_report():
    r = parse_report(load("grype-web-1.json"))
    assert (r.format, r.scanner, r.scanner_version) == ("grype", "grype", "0.87.0")
    # the platform manifest and the reference it was pulled by
    assert r.image_digests == ("sha256:4918622ff1d09c8f0e1893fe77cee5e38e5bae69d3c0fb8215b8d520e879e976", D_WEB1)
    f = by_label(r.findings)
    wz = f["CVE-2024-34069 (werkzeug)"]
    assert wz.vuln_id == "GHSA-2g68-c3qc-8985" and wz.aliases == ("CVE-2024-34069",)
    assert wz.primary_id == "CVE-2024-34069" and wz.fixed_version == "3.0.3" and wz.epss == 0.00079
    assert f["CVE-2011-3374 (libapt-pkg6.0)"].severity == Severity.LOW   # Negligible
    assert f["CVE-2023-45853 (zlib1g)"].fixed_version is None            # wont-fix, no versions
    assert f["CVE-2023-45853 (zlib1g)"].kev is None                      # no knownExploited: unknown


def test_grype_kev_epss_and_vex_ignored_matches():
    f = by_label(parse_report(load("grype-web-2.json")).findings)
    webp = f["CVE-2023-4863 (libwebp7)"]
    assert webp.kev is True and webp.epss == 0.93621
    expat = f["CVE-2023-52425 (libexpat1)"]
    assert expat.suppressed and expat.suppression_reason == "grype VEX: not_affected (vulnerable_code_not_present)"


def test_grype_non_vex_ignore_rule_does_not_suppress():
    d = doc("grype-web-2.json")
    rule = d["ignoredMatches"][0]["appliedIgnoreRules"][0]
    rule.update(namespace="", **{"vex-status": "", "vex-justification": "", "reason": "accepted by team"})
    assert not by_label(parse_report(json.dumps(d)).findings)["CVE-2023-52425 (libexpat1)"].suppressed


# --------------------------------------------------------------------------------- CycloneDX


def test_cyclonedx_vex_document():
    r = parse_report(load("cdx-vex-web-2.json"))
    assert (r.format, r.scanner, r.scanner_version) == ("cyclonedx", "vex-editor", "2.3.1")   # 1.5 tools object
    assert r.image_digests == (D_WEB2,)
    f = by_label(r.findings)
    ssl = f["CVE-2024-6119 (libssl3)"]
    # not_affected *because not reachable* is a reachability claim, not a suppression
    assert ssl.reachable is False and not ssl.suppressed and ssl.vex_state == "not_affected"
    ng = f["CVE-2024-28182 (libnghttp2-14)"]
    assert ng.suppressed and ng.suppression_reason == "CycloneDX VEX: not_affected (requires_configuration)"
    assert ng.severity == Severity.UNKNOWN and ng.version == "1.52.0-1+deb12u1"
    expat = f["CVE-2024-45490 (libexpat1)"]   # affects[].ref is a purl that is not in components
    assert expat.version == "2.5.0-1" and expat.vex_state == "exploitable" and not expat.suppressed
    assert expat.severity == Severity.CRITICAL


def test_cyclonedx_1_4_bom_with_vulnerabilities_and_properties():
    r = parse_report(load("cdx-api-1.json"))
    assert (r.scanner, r.scanner_version) == ("trivy", "0.50.1")            # 1.4 tools array
    assert r.image_digests == (D_API1,)                                     # purl + RepoDigest property
    assert r.image_id == "sha256:3bbf618a89923fc2e0ec005440d8b2e1ff1f0aac104f2275210bf71865485659"
    f = by_label(r.findings)
    log4j = f["CVE-2021-44228 (org.apache.logging.log4j:log4j-core)"]
    assert (log4j.kev, log4j.epss, log4j.severity) == (True, 0.94358, Severity.CRITICAL)
    beans = f["CVE-2022-22965 (org.springframework:spring-beans)"]
    assert beans.severity == Severity.CRITICAL and beans.vex_state == "in_triage" and not beans.suppressed
    expr = f["CVE-2023-20863 (org.springframework:spring-expression)"]
    assert expr.reachable is False and expr.fixed_version == "5.3.27"
    web = f["CVE-2024-22262 (org.springframework:spring-web)"]
    assert web.suppressed and web.vex_state == "false_positive"


@pytest.mark.parametrize("spec", ["1.4", "1.5", "1.6"])
def test_cyclonedx_supported_spec_versions(spec):
    d = doc("cdx-vex-web-2.json")
    d["specVersion"] = spec
    assert len(parse_report(json.dumps(d)).findings) == 3


def test_cyclonedx_unsupported_spec_version_and_state():
    d = doc("cdx-vex-web-2.json")
    d["specVersion"] = "1.2"
    with pytest.raises(ReportFormatError, match=r"specVersion '1.2' \(supported: 1.4, 1.5, 1.6\)"):
        parse_report(json.dumps(d), name="vex.json")
    d = doc("cdx-vex-web-2.json")
    d["vulnerabilities"][0]["analysis"]["state"] = "maybe"
    with pytest.raises(ReportFormatError, match=r"vulnerabilities\[0\].analysis.state: unknown state 'maybe'"):
        parse_report(json.dumps(d))


def test_cyclonedx_statement_without_affects_names_no_package():
    d = doc("cdx-vex-web-2.json")
    del d["vulnerabilities"][1]["affects"]
    f = [x for x in parse_report(json.dumps(d)).findings if x.vuln_id == "CVE-2024-28182"]
    assert len(f) == 1 and f[0].package == "" and f[0].suppressed


# ------------------------------------------------------------------- detection and bad input


def test_detect_format():
    assert detect_format(doc("trivy-web-1.json")) == "trivy"
    assert detect_format(doc("grype-web-1.json")) == "grype"
    assert detect_format(doc("cdx-vex-web-2.json")) == "cyclonedx"


@pytest.mark.parametrize("data, message", [
    (b"", "empty file"),
    (b"   \n", "empty file"),
    (b"<?xml version='1.0'?><bom/>", "looks like XML; only JSON reports are supported"),
    (b"scan failed: unauthorized", r"not valid JSON \(Expecting value: line 1 column 1\)"),
    (b"\xff\xfe\x00garbage", "not UTF-8 text"),
    (gzip.compress(b"{}"), "gzip-compressed"),
    (b"[1, 2, 3]", "the top level is a JSON list, not an object"),
    (b'{"hello": "world"}', r"an unrecognized document \(top-level keys: hello\); expected Trivy JSON"),
    (b'{"spdxVersion": "SPDX-2.3"}', "an SPDX SBOM"),
    (b'{"SchemaVersion": 1, "ArtifactName": "x"}', "unsupported Trivy SchemaVersion 1"),
    (b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"PkgName": "a"}]}]}',
     r"malformed trivy report: Results\[0\].Vulnerabilities\[0\].VulnerabilityID is missing"),
    (b'{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"VulnerabilityID": "CVE-1", "PkgName": "a",'
     b' "Severity": "SEVERE"}]}]}', "unrecognized severity 'SEVERE'"),
    (b'{"SchemaVersion": 2, "Results": {"oops": 1}}', "Results must be an array, got dict"),
    (b'{"matches": [{"vulnerability": {"id": "CVE-1", "epss": [{"epss": NaN}]}, "artifact": {"name": "a"}}],'
     b' "source": {}}', "NaN is not a JSON number"),
    (b'{"matches": [{"vulnerability": {"id": "CVE-1", "epss": [{"epss": 3}]}, "artifact": {"name": "a"}}],'
     b' "source": {}}', "EPSS 3 is not a probability"),
])
def test_garbage_is_refused_with_a_clear_error(data, message):
    with pytest.raises(ReportFormatError, match=message) as exc:
        parse_report(data, name="scan.json")
    assert exc.value.report == "scan.json" and str(exc.value).startswith("scan.json: ")


def test_real_world_broken_files():
    with pytest.raises(ReportFormatError, match=r"trivy-truncated.json: not valid JSON \(Unterminated string"):
        parse_report((SCANS / "trivy-truncated.json").read_bytes(), name="trivy-truncated.json")
    with pytest.raises(ReportFormatError, match=r"SARIF \(not supported"):
        parse_report(load("sarif-web-2.json"))


def test_bytes_with_bom_are_accepted():
    data = b"\xef\xbb\xbf" + (SCANS / "trivy-web-1.json").read_bytes()
    assert len(parse_report(data).findings) == 6


# --------------------------------------------------------------------------------- enrichment


def test_kev_catalogue():
    kev = parse_kev(load("kev.json"))
    assert kev.catalog_version == "2025.06.06"
    assert kev.cves == {"CVE-2024-3400", "CVE-2023-4863", "CVE-2022-22965", "CVE-2021-44228"}
    for bad, msg in [("{", "not valid JSON"), ('{"title": "x"}', "expected the CISA format"),
                     ('{"vulnerabilities": [{"product": "x"}]}', r"vulnerabilities\[0\] has no cveID")]:
        with pytest.raises(EnrichmentError, match=msg):
            parse_kev(bad)


def test_epss_csv_as_first_publishes_it():
    e = parse_epss(load("epss.csv"))
    assert (e.model_version, e.score_date) == ("v2025.03.14", "2025-06-08T12:55:00Z")
    assert e.scores["CVE-2024-45490"] == 0.6205 and len(e.scores) == 12
    assert parse_epss(gzip.compress((SCANS / "epss.csv").read_bytes())).scores == e.scores   # .csv.gz download
    with pytest.raises(EnrichmentError, match="expected a header line 'cve,epss,percentile'"):
        parse_epss("CVE-2024-1,0.1,0.2\n")
    with pytest.raises(EnrichmentError, match="line 3: EPSS 1.5 is not a probability"):
        parse_epss("#model_version:v1\ncve,epss,percentile\nCVE-2024-1,1.5,0.2\n")


# ------------------------------------------------------------------------------ merge, enrich


def test_merge_deduplicates_the_same_cve_and_package_across_scanners():
    trivy = parse_report(load("trivy-web-1.json")).findings
    grype = parse_report(load("grype-web-1.json")).findings
    merged = merge_findings([*trivy, *grype])
    assert len(merged) == 6                                   # grype adds nothing new
    f = by_label(merged)
    wz = f["CVE-2024-34069 (werkzeug)"]                       # trivy CVE + grype GHSA(alias CVE)
    assert wz.vuln_id == "CVE-2024-34069" and wz.aliases == ("GHSA-2g68-c3qc-8985",) and wz.epss == 0.00079
    assert f["CVE-2024-6119 (libssl3)"].epss == 0.00213       # from grype, merged into trivy's finding
    assert [x.severity for x in merged] == sorted((x.severity for x in merged), key=lambda s: -s.rank)


def test_merge_applies_vex_from_another_document():
    trivy = parse_report(load("trivy-web-2.json")).findings
    vex = parse_report(load("cdx-vex-web-2.json")).findings
    f = by_label(merge_findings([*trivy, *vex]))
    assert f["CVE-2024-28182 (libnghttp2-14)"].suppressed
    assert f["CVE-2024-28182 (libnghttp2-14)"].severity == Severity.MEDIUM   # severity from trivy
    assert f["CVE-2024-6119 (libssl3)"].reachable is False
    assert not f["CVE-2024-45490 (libexpat1)"].suppressed


def test_merge_conflicts_are_resolved_conservatively():
    a = Finding(vuln_id="CVE-1", package="p", severity=Severity.LOW, suppressed=True,
                suppression_reason="x: not_affected", vex_state="not_affected", reachable=False)
    b = Finding(vuln_id="CVE-1", package="P", severity=Severity.HIGH, vex_state="exploitable", reachable=True)
    m = merge_findings([a, b])
    assert len(m) == 1 and (m[0].severity, m[0].suppressed, m[0].reachable) == (Severity.HIGH, False, True)
    # a statement that names no package applies to every package with that vulnerability
    c = Finding(vuln_id="CVE-1", suppressed=True, suppression_reason="vex", vex_state="not_affected")
    m = merge_findings([a.model_copy(update={"suppressed": False, "vex_state": None}),
                        Finding(vuln_id="CVE-1", package="q"), c])
    assert [x.suppressed for x in m] == [True, True]


def test_enrich_matches_aliases():
    f = parse_report(load("grype-web-1.json")).findings
    out = by_label(enrich(f, kev=["cve-2024-34069"], epss={"CVE-2024-34069": 0.5, "CVE-2023-45853": 0.001}))
    assert out["CVE-2024-34069 (werkzeug)"].kev is True and out["CVE-2024-34069 (werkzeug)"].epss == 0.5
    assert out["CVE-2023-45853 (zlib1g)"].epss == 0.01147     # the higher of report and file
    assert out["CVE-2024-6119 (libssl3)"].kev is None


def test_purl_package():
    assert purl_package("pkg:deb/debian/zlib1g@1.2.13.dfsg-1?arch=amd64&epoch=1") == ("zlib1g", "1:1.2.13.dfsg-1")
    assert purl_package("pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1") == \
        ("org.apache.logging.log4j:log4j-core", "2.14.1")
    assert purl_package("pkg:npm/%40babel/traverse@7.23.0") == ("@babel/traverse", "7.23.0")
    assert purl_package("pkg:golang/golang.org/x/net@v0.17.0") == ("golang.org/x/net", "v0.17.0")
    assert purl_package("pkg:pypi/werkzeug") == ("werkzeug", None)
    assert purl_package("urn:uuid:1234") is None


# ------------------------------------------------------------------------------------ sources


def test_folder_source_layouts(tmp_path):
    hexd = D_WEB2.split(":")[1]
    (tmp_path / hexd).mkdir()
    (tmp_path / hexd / "trivy.json").write_text(load("trivy-web-2.json"))
    (tmp_path / hexd / ".grype.json.partial.json").write_text("{")
    (tmp_path / f"sha256-{hexd}.grype.json").write_text(load("grype-web-2.json"))
    (tmp_path / f"sha256-{D_WEB1.split(':')[1]}.json").write_text("{}")       # another digest
    found = FolderSource(tmp_path).find("reg.local:5000/shop/web", D_WEB2)
    assert [r.name for r in found] == [f"{hexd}/trivy.json", f"sha256-{hexd}.grype.json"]
    import hashlib
    assert found[0].sha256 == "sha256:" + hashlib.sha256((SCANS / "trivy-web-2.json").read_bytes()).hexdigest()
    assert FolderSource(tmp_path).find("r", D_API1) == []
    assert "sha256-" + D_API1.split(":")[1] in FolderSource(tmp_path).describe(D_API1)


def test_folder_source_errors(tmp_path):
    with pytest.raises(ReportSourceError, match="does not exist"):
        FolderSource(tmp_path / "nope").find("r", D_WEB1)
    with pytest.raises(ReportSourceError, match="not an image digest"):
        FolderSource(tmp_path).find("r", "latest")
    (tmp_path / f"sha256-{D_WEB1.split(':')[1]}.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ReportSourceError, match="not UTF-8"):
        FolderSource(tmp_path).find("r", D_WEB1)


def test_raw_report_hash_without_bytes():
    assert RawReport(name="a", text="{}").sha256 == \
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
