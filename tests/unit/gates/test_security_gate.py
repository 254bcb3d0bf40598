"""The security gate: thresholds, KEV, EPSS, reachability, VEX, new criticals, fail closed, replay."""

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stella_operators.gates.contract import GateConfigError, PromotionContext, Verdict, evaluate_gate, replay_gate
from stella_operators.gates.registry import build_gate
from stella_operators.gates.security.gate import SecurityGate, SecurityGateConfig
from stella_operators.gates.security.sources import RawReport
from stella_operators.release.model import ComponentDigest, Release

SCANS = Path(__file__).resolve().parents[2] / "fixtures" / "scans"
D_WEB1 = "sha256:61140036715eff25521c25fa20e5a926dfdbe9e191ef395846d084be7edc29bf"
D_WEB2 = "sha256:bb9a421e64b5ab014a5d00943a6f233412a47fbc8fec2639d7fddf5384bdbfcb"
D_API1 = "sha256:9e32b01919ca08063145b7a0d9ab490410f945fa5a3fdd18f9347135cdd67f8c"
D_WORKER1 = "sha256:4aa21c287fbac04a8983d4f65aef33537eb64ef2f1c93706fb6dbb49f807a4a2"
NOW = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
# "no limits" so that one rule at a time can be exercised
OPEN = {"max_critical": None, "block_kev": False, "block_new_criticals": False}


def file_reports(root: Path, digest: str, *fixtures: str) -> None:
    """File fixtures as <root>/<hex>/<fixture> (the per-digest folder layout)."""
    folder = root / digest.split(":")[1]
    folder.mkdir(parents=True, exist_ok=True)
    for name in fixtures:
        shutil.copy(SCANS / name, folder / name)


def release(name: str, **digests: str) -> Release:
    comps = [ComponentDigest(name=c, repository=f"reg.local:5000/shop/{c}", digest=d) for c, d in digests.items()]
    return Release.seal(id=f"rel-{name}", app="shop", name=name, components=comps, created_at=NOW, created_by="ci")


def ctx(rel: Release, previous: Release | None = None) -> PromotionContext:
    return PromotionContext(app="shop", environment="prod", release=rel, promotion_id="prom-1",
                            requested_by="alice", now=NOW, previous_release=previous)


def gate(root: Path, **config) -> SecurityGate:
    return build_gate({"type": "security", "name": "scan", "reports": str(root), **config},
                      types={"security": SecurityGate})


def run(root: Path, rel: Release, previous: Release | None = None, **config):
    verdict, inputs = evaluate_gate(gate(root, **config), ctx(rel, previous))
    return verdict, inputs


# ----------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("fixture, field, count, reason", [
    ("trivy-web-2.json", "max_critical", 2, "security.critical_over_max"),
    ("trivy-web-1.json", "max_high", 3, "security.high_over_max"),
    ("trivy-web-2.json", "max_medium", 2, "security.medium_over_max"),
])
def test_threshold_at_the_limit_passes_and_over_fails(tmp_path, fixture, field, count, reason):
    digest = D_WEB2 if "web-2" in fixture else D_WEB1
    file_reports(tmp_path, digest, fixture)
    rel = release("r", web=digest)
    at, _ = run(tmp_path, rel, **{**OPEN, field: count})
    assert at.verdict == Verdict.PASS, at.message
    over, _ = run(tmp_path, rel, **{**OPEN, field: count - 1})
    assert over.verdict == Verdict.FAIL and over.reasons == (reason,)
    severity = field.removeprefix("max_")
    assert f"web (sha256:{digest[7:19]}): {count} {severity} > {field} {count - 1}" in over.message
    assert over.details["components"]["web"]["counts"][severity] == count
    assert len(over.details["components"]["web"]["offending"][reason]) == len({*over.details["components"]["web"]
                                                                               ["offending"][reason]})


def test_defaults_block_any_critical(tmp_path):
    file_reports(tmp_path, D_WEB1, "trivy-web-1.json")
    v, _ = run(tmp_path, release("r", web=D_WEB1))
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.critical_over_max",)
    assert "CVE-2023-45853 (zlib1g)" in v.message
    assert v.details["components"]["web"]["offending"] == {"security.critical_over_max": ["CVE-2023-45853"]}
    assert "raise max_critical for prod in the estate" in v.remedy and "VEX statement" in v.remedy


def test_pass_message_and_counts(tmp_path):
    file_reports(tmp_path, D_WEB1, "trivy-web-1.json", "grype-web-1.json")
    file_reports(tmp_path, D_WORKER1, "trivy-worker-1.json")
    v, _ = run(tmp_path, release("r", web=D_WEB1, worker=D_WORKER1), max_critical=1, max_high=3)
    assert v.verdict == Verdict.PASS and v.reasons == ()
    assert v.message == "scan: 2 component(s) within the security thresholds of prod"
    # the same CVE + package found by Trivy and Grype counts once
    assert v.details["components"]["web"]["counts"] == {"critical": 1, "high": 3, "medium": 1, "low": 1, "unknown": 0}
    assert v.details["components"]["web"]["reports"] == [f"{D_WEB1[7:]}/grype-web-1.json",
                                                         f"{D_WEB1[7:]}/trivy-web-1.json"]
    assert v.details["components"]["worker"]["counts"]["critical"] == 0


def test_message_caps_the_cve_list_and_remedy_names_fixes(tmp_path):
    vulns = [{"VulnerabilityID": f"CVE-2025-{1000 + i}", "PkgName": f"lib{i}", "InstalledVersion": "1.0",
              "FixedVersion": f"1.{i}", "Severity": "HIGH"} for i in range(8)]
    report = {"SchemaVersion": 2, "ArtifactName": f"reg.local:5000/shop/web@{D_WEB1}",
              "ArtifactType": "container_image",
              "Results": [{"Target": "x (debian 12.6)", "Class": "os-pkgs", "Type": "debian",
                           "Vulnerabilities": vulns}]}
    (tmp_path / f"sha256-{D_WEB1[7:]}.json").write_text(json.dumps(report))   # the flat layout
    v, _ = run(tmp_path, release("r", web=D_WEB1), max_high=0)
    assert "8 high > max_high 0" in v.message and "... (+3 more)" in v.message
    assert v.message.count("CVE-2025-") == 5
    assert len(v.details["components"]["web"]["offending"]["security.high_over_max"]) == 8
    assert v.remedy.startswith("Upgrade lib0 to 1.0, lib1 to 1.1, lib2 to 1.2, lib3 to 1.3, lib4 to 1.4 (+3 more)")
    assert "raise max_high for prod in the estate" in v.remedy


# ------------------------------------------------------------------------------- KEV / EPSS


def test_kev_from_the_report(tmp_path):
    file_reports(tmp_path, D_WEB2, "grype-web-2.json")
    rel = release("r", web=D_WEB2)
    v, _ = run(tmp_path, rel, **{**OPEN, "block_kev": True})
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.kev_present",)
    assert "1 KEV-listed, known exploited (CVE-2023-4863 (libwebp7))" in v.message
    assert "upgrade libwebp7 to 1.2.4-0.2+deb12u2" in v.remedy.lower() and "block_kev: false" in v.remedy
    assert run(tmp_path, rel, **OPEN)[0].verdict == Verdict.PASS


def test_kev_from_the_kev_file(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    rel = release("r", web=D_WEB2)
    no_file, _ = run(tmp_path, rel, **{**OPEN, "block_kev": True})
    assert no_file.verdict == Verdict.PASS                      # Trivy alone says nothing about KEV
    v, inputs = run(tmp_path, rel, **{**OPEN, "block_kev": True, "kev_file": str(SCANS / "kev.json")})
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.kev_present",)
    assert v.details["components"]["web"]["offending"]["security.kev_present"] == ["CVE-2023-4863"]
    kev = inputs["enrichment"]["kev"]
    assert kev["listed"] == ["CVE-2023-4863"] and kev["catalog_version"] == "2025.06.06"
    assert kev["sha256"].startswith("sha256:")


def test_kev_of_a_suppressed_finding_does_not_block(tmp_path):
    file_reports(tmp_path, D_API1, "cdx-api-1.json")
    rel = release("r", api=D_API1)
    v, _ = run(tmp_path, rel, **{**OPEN, "block_kev": True, "kev_file": str(SCANS / "kev.json")})
    # log4j (property) and spring-beans (kev file, in_triage) are KEV; spring-web is a false positive
    assert v.details["components"]["api"]["offending"]["security.kev_present"] == ["CVE-2021-44228", "CVE-2022-22965"]
    assert v.details["components"]["api"]["suppressed"] == ["CVE-2024-22262 (org.springframework:spring-web)"]


@pytest.mark.parametrize("threshold, offending", [
    (0.5, ["CVE-2023-4863", "CVE-2024-45490"]),
    (0.6205, ["CVE-2023-4863", "CVE-2024-45490"]),      # at the threshold fails
    (0.9, ["CVE-2023-4863"]),
    (0.95, None),
])
def test_epss_threshold_from_the_epss_csv(tmp_path, threshold, offending):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    v, inputs = run(tmp_path, release("r", web=D_WEB2), **OPEN, epss_threshold=threshold,
                    epss_file=str(SCANS / "epss.csv"))
    if offending is None:
        assert v.verdict == Verdict.PASS
    else:
        assert v.verdict == Verdict.FAIL and v.reasons == ("security.epss_over_threshold",)
        assert v.details["components"]["web"]["offending"]["security.epss_over_threshold"] == offending
        assert f"with EPSS >= {threshold:g} (CVE-2023-4863 (libwebp7) 0.93621" in v.message
        assert "raise epss_threshold" in v.remedy
    epss = inputs["enrichment"]["epss"]
    assert epss["score_date"] == "2025-06-08T12:55:00Z"
    assert "CVE-2021-44228" not in epss["scores"] and epss["scores"]["CVE-2024-45490"] == 0.6205  # only what matters


def test_epss_without_file_or_threshold_does_not_decide(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    assert run(tmp_path, release("r", web=D_WEB2), **OPEN, epss_threshold=0.01)[0].verdict == Verdict.PASS
    assert run(tmp_path, release("r", web=D_WEB2), **OPEN, epss_file=str(SCANS / "epss.csv"))[0].verdict \
        == Verdict.PASS


def test_unreadable_enrichment_file_fails_closed(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    (tmp_path / "kev.json").write_text("<html>rate limited</html>")
    for kwargs in ({"kev_file": str(tmp_path / "missing.json")}, {"kev_file": str(tmp_path / "kev.json")},
                   {"epss_file": str(SCANS / "kev.json")}):
        v, _ = run(tmp_path, release("r", web=D_WEB2), **OPEN, **kwargs)
        assert v.verdict == Verdict.FAIL and v.reasons == ("security.enrichment_unreadable",), v.message


# ------------------------------------------------------------------ reachability and VEX


def test_reachable_only_with_a_cyclonedx_code_not_reachable_statement(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json", "cdx-vex-web-2.json")
    rel = release("r", web=D_WEB2)
    counted, _ = run(tmp_path, rel, **OPEN, max_high=1)
    assert counted.verdict == Verdict.FAIL and counted.reasons == ("security.high_over_max",)
    assert "CVE-2024-6119 (libssl3)" in counted.message
    v, _ = run(tmp_path, rel, **OPEN, max_high=1, reachable_only=True)
    assert v.verdict == Verdict.PASS, v.message
    web = v.details["components"]["web"]
    assert web["excluded_unreachable"] == ["CVE-2024-6119 (libssl3)"]
    assert web["counts"]["high"] == 1                          # libwebp7: reachability unknown, so it counts
    v, _ = run(tmp_path, rel, **OPEN, max_high=0, reachable_only=True)
    assert v.verdict == Verdict.FAIL and "CVE-2023-4863 (libwebp7)" in v.message


def test_reachable_property_counts_only_when_reachable_only(tmp_path):
    file_reports(tmp_path, D_API1, "cdx-api-1.json")
    rel = release("r", api=D_API1)
    assert run(tmp_path, rel, **OPEN, max_medium=0)[0].verdict == Verdict.FAIL
    assert run(tmp_path, rel, **OPEN, max_medium=0, reachable_only=True)[0].verdict == Verdict.PASS


def test_vex_not_affected_suppresses(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    rel = release("r", web=D_WEB2)
    without, _ = run(tmp_path, rel, **OPEN, max_medium=1)
    assert without.verdict == Verdict.FAIL and "CVE-2024-28182 (libnghttp2-14)" in without.message
    # Trivy's own VEX-suppressed finding (CVE-2023-52425) never counted
    assert without.details["components"]["web"]["counts"]["high"] == 2
    assert without.details["components"]["web"]["suppressed"] == ["CVE-2023-52425 (libexpat1)"]
    file_reports(tmp_path, D_WEB2, "cdx-vex-web-2.json")
    with_vex, _ = run(tmp_path, rel, **OPEN, max_medium=1)
    assert with_vex.verdict == Verdict.PASS, with_vex.message
    assert with_vex.details["components"]["web"]["suppressed"] == ["CVE-2023-52425 (libexpat1)",
                                                                  "CVE-2024-28182 (libnghttp2-14)"]


def test_all_three_formats_for_one_digest(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json", "grype-web-2.json", "cdx-vex-web-2.json")
    v, inputs = run(tmp_path, release("r", web=D_WEB2), max_critical=2, max_high=2, max_medium=1, block_kev=True,
                    epss_threshold=0.9, block_new_criticals=False)
    assert v.reasons == ("security.epss_over_threshold", "security.kev_present")
    assert v.details["components"]["web"]["counts"] == {"critical": 2, "high": 2, "medium": 1, "low": 1, "unknown": 0}
    assert [r["format"] for r in inputs["candidate"]["components"][0]["reports"]] == ["cyclonedx", "grype", "trivy"]


# --------------------------------------------------------------------------- new criticals


def test_new_critical_versus_the_deployed_release(tmp_path):
    file_reports(tmp_path, D_WEB1, "trivy-web-1.json")
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    previous, candidate = release("shop-1.3.0", web=D_WEB1), release("shop-1.4.0", web=D_WEB2)
    v, inputs = run(tmp_path, candidate, previous, max_critical=10)
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.new_critical",)
    # zlib's CVE-2023-45853 is deployed already: not new; expat's CVE-2024-45490 is
    assert v.details["components"]["web"]["offending"] == {"security.new_critical": ["CVE-2024-45490"]}
    assert "1 new critical vs deployed release shop-1.3.0 (CVE-2024-45490 (libexpat1))" in v.message
    assert "upgrade libexpat1 to 2.5.0-1+deb12u1" in v.remedy.lower() and "block_new_criticals: false" in v.remedy
    assert inputs["previous"]["name"] == "shop-1.3.0"
    assert run(tmp_path, candidate, previous, max_critical=10, block_new_criticals=False)[0].verdict == Verdict.PASS


def test_same_critical_in_the_deployed_release_is_not_new(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    file_reports(tmp_path, D_API1, "cdx-api-1.json")
    deployed = release("shop-1.4.0", web=D_WEB2, api=D_API1)
    v, _ = run(tmp_path, release("shop-1.4.1", web=D_WEB2, api=D_API1), deployed, max_critical=10, block_kev=False)
    assert v.verdict == Verdict.PASS, v.message
    # a critical present anywhere in the deployed release is not new, even in another component
    moved = release("shop-1.5.0", web=D_API1, api=D_WEB2)
    assert run(tmp_path, moved, deployed, max_critical=10, block_kev=False)[0].verdict == Verdict.PASS


def test_no_deployed_release_means_no_delta(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    v, inputs = run(tmp_path, release("r", web=D_WEB2), max_critical=10)
    assert v.verdict == Verdict.PASS and inputs["previous"] is None
    assert v.details["baseline"] == {"release": None, "incomplete_for": []}


def test_deployed_release_without_scan_counts_every_critical_as_new(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    v, _ = run(tmp_path, release("new", web=D_WEB2), release("old", web=D_WEB1), max_critical=10)
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.new_critical",)
    assert v.details["components"]["web"]["offending"]["security.new_critical"] == ["CVE-2023-45853", "CVE-2024-45490"]
    assert "no readable scan of the deployed web" in v.message
    assert v.details["baseline"] == {"release": "old", "incomplete_for": ["web"]}


# ------------------------------------------------------------------------------ fail closed


def test_missing_report_fails_closed(tmp_path):
    file_reports(tmp_path, D_WEB1, "trivy-web-1.json")
    v, inputs = run(tmp_path, release("r", web=D_WEB1, api=D_API1), max_critical=None)
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.report_missing",)
    assert f"api (sha256:{D_API1[7:19]}): no scan report (looked for {tmp_path}/{D_API1[7:]}/*.json" in v.message
    assert "scan the image by digest" in v.remedy.lower()
    assert v.details["components"]["api"]["status"] == "missing"
    assert v.details["components"]["web"]["status"] == "ok"
    assert [c["status"] for c in inputs["candidate"]["components"]] == ["missing", "ok"]


def test_no_report_folder_fails_closed(tmp_path):
    v, _ = run(tmp_path / "not-mounted", release("r", web=D_WEB1), **OPEN)
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.report_unreadable",)
    assert "does not exist" in v.message


@pytest.mark.parametrize("bad", ["trivy-truncated.json", "sarif-web-2.json"])
def test_unreadable_report_fails_closed_even_beside_a_good_one(tmp_path, bad):
    file_reports(tmp_path, D_WEB2, "grype-web-2.json", bad)
    v, inputs = run(tmp_path, release("r", web=D_WEB2), **OPEN)
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.report_unreadable",)
    assert f"web (sha256:{D_WEB2[7:19]}): unreadable scan report: {D_WEB2[7:]}/{bad}:" in v.message
    entry = next(r for r in inputs["candidate"]["components"][0]["reports"] if r["name"].endswith(bad))
    assert entry["error"] and entry["sha256"].startswith("sha256:") and "findings" not in entry


def test_report_for_another_image_fails_closed(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-1.json")           # misfiled
    v, _ = run(tmp_path, release("r", web=D_WEB2), **OPEN)
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.report_digest_mismatch",)
    assert f"is for sha256:{D_WEB1[7:19]}, not this digest" in v.message


def test_collect_error_fails_closed_through_the_contract(tmp_path):
    class Broken:
        def find(self, repository, digest):
            raise RuntimeError("object store timeout")

    g = SecurityGate("scan", SecurityGateConfig(reports=str(tmp_path)), source=Broken())
    v, inputs = evaluate_gate(g, ctx(release("r", web=D_WEB1)))
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.error",) and "timeout" in inputs["error"]


# ---------------------------------------------------------------- pluggable source, replay


def test_a_custom_source_is_read_once_per_digest(tmp_path):
    calls = []

    class Memory:
        def find(self, repository, digest):
            calls.append((repository, digest))
            return [RawReport(name="trivy.json", text=(SCANS / "trivy-web-2.json").read_text())]

    g = SecurityGate("scan", SecurityGateConfig(reports="unused", max_critical=None), source=Memory())
    rel = release("r", web=D_WEB2)
    v, _ = evaluate_gate(g, ctx(rel, rel))
    assert v.verdict == Verdict.PASS and calls == [("reg.local:5000/shop/web", D_WEB2)]


def test_replay_gives_the_same_verdict_and_inputs_hash(tmp_path):
    file_reports(tmp_path, D_WEB1, "trivy-web-1.json", "grype-web-1.json")
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json", "grype-web-2.json", "cdx-vex-web-2.json")
    g = gate(tmp_path, max_critical=5, max_high=1, epss_threshold=0.5, reachable_only=True,
             kev_file=str(SCANS / "kev.json"), epss_file=str(SCANS / "epss.csv"))
    c = ctx(release("new", web=D_WEB2), release("old", web=D_WEB1))
    verdict, inputs = evaluate_gate(g, c)
    assert verdict.verdict == Verdict.FAIL
    assert set(verdict.reasons) == {"security.kev_present", "security.epss_over_threshold", "security.new_critical"}
    recorded = json.loads(json.dumps(inputs))                       # as stored in the evidence record
    shutil.rmtree(tmp_path)                                          # replay needs no files
    again = replay_gate(g, recorded, at=NOW)
    assert again == verdict
    assert again.inputs_hash == verdict.inputs_hash
    # a gate built from a different config decides from the recorded config, not its own
    other = gate(tmp_path, max_critical=None, block_kev=False)
    assert replay_gate(other, recorded, at=NOW).model_dump(exclude={"gate_name"}) == \
        verdict.model_dump(exclude={"gate_name"})
    # inputs carry parsed findings and report hashes, never raw report text
    reports = recorded["candidate"]["components"][0]["reports"]
    assert all(r["sha256"].startswith("sha256:") and isinstance(r["findings"], list) for r in reports)
    assert "Vulnerabilities" not in json.dumps(recorded)


def test_evaluating_twice_gives_the_same_inputs_hash(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json", "grype-web-2.json")
    c = ctx(release("r", web=D_WEB2))
    first, _ = evaluate_gate(gate(tmp_path), c)
    second, _ = evaluate_gate(gate(tmp_path), c)
    assert first == second


def test_tampered_inputs_fail_closed_on_replay(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    g = gate(tmp_path)
    _, inputs = evaluate_gate(g, ctx(release("r", web=D_WEB2)))
    inputs["candidate"]["components"][0]["reports"][0]["findings"][0]["severity"] = "apocalyptic"
    v = replay_gate(g, inputs, at=NOW)
    assert v.verdict == Verdict.FAIL and v.reasons == ("security.error",)


# ---------------------------------------------------------------------------- configuration


@pytest.mark.parametrize("spec, path, message", [
    ({"max_critical": -1}, "max_critical", "greater than or equal to 0"),
    ({"max_criticals": 1}, "max_criticals", "unknown key 'max_criticals' for a security gate"),
    ({"epss_threshold": 1.5}, "epss_threshold", "less than or equal to 1"),
    ({"max_high": "a few"}, "max_high", "valid integer"),
    ({"block_kev": "sometimes"}, "block_kev", "valid boolean"),
    ({"reports": None}, "reports", "valid string"),
])
def test_config_errors_name_the_field(tmp_path, spec, path, message):
    with pytest.raises(GateConfigError) as exc:
        gate(tmp_path, **spec)
    assert exc.value.path == path and message in exc.value.message


def test_reports_folder_is_required():
    with pytest.raises(GateConfigError) as exc:
        build_gate({"type": "security"}, types={"security": SecurityGate})
    assert exc.value.path == "reports" and exc.value.message == "Field required"


def test_config_defaults(tmp_path):
    g = gate(tmp_path)
    assert g.type == "security" and g.name == "scan"
    assert g.config.model_dump() == {
        "reports": str(tmp_path), "max_critical": 0, "max_high": None, "max_medium": None, "block_kev": True,
        "epss_threshold": None, "reachable_only": False, "block_new_criticals": True, "kev_file": None,
        "epss_file": None}
