"""The security gate counts only completed scans of this exact image (issue 6 item 4).

A Trivy JSON without `Results`, a CycloneDX SBOM without a vulnerabilities section, a report
that names no image digest: each is a document that says nothing about this image's
vulnerabilities, so each fails with `security.report_incomplete`, naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stella_operators.gates.contract import Verdict
from stella_operators.gates.security.reports import parse_report
from tests.unit.gates.test_security_gate import (
    D_API1,
    D_WEB1,
    D_WEB2,
    D_WORKER1,
    OPEN,
    SCANS,
    file_reports,
    release,
    run,
)

INCOMPLETE = "security.report_incomplete"


def fixture(name: str) -> dict:
    return json.loads((SCANS / name).read_text())


def file_doc(root: Path, digest: str, name: str, doc: dict) -> str:
    folder = root / digest.split(":")[1]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(doc))
    return f"{digest.split(':')[1]}/{name}"


def trivy_without_results() -> dict:
    doc = fixture("trivy-web-2.json")
    del doc["Results"]
    return doc


def trivy_empty_results() -> dict:
    return {**fixture("trivy-web-2.json"), "Results": []}


def trivy_secrets_only() -> dict:
    doc = fixture("trivy-web-2.json")
    doc["Results"] = [{"Target": "/app/config.yaml", "Class": "secret", "Secrets": []}]
    return doc


def trivy_naming_no_digest() -> dict:
    """A local image scanned by tag: only the config digest (ImageID), which is not the manifest digest."""
    doc = fixture("trivy-web-2.json")
    doc["ArtifactName"] = "reg.local:5000/shop/web:1.4.0"
    doc["Metadata"]["RepoDigests"] = []
    return doc


def grype_naming_no_digest() -> dict:
    doc = fixture("grype-web-2.json")
    target = doc["source"]["target"]
    target.update(userInput="reg.local:5000/shop/web:1.4.0", manifestDigest="", repoDigests=[])
    return doc


def grype_of_a_directory() -> dict:
    doc = fixture("grype-web-2.json")
    doc["source"] = {"type": "directory", "target": f"/src/web@{D_WEB2}"}
    return doc


def cdx_sbom_without_vulnerabilities() -> dict:
    doc = fixture("cdx-api-1.json")
    del doc["vulnerabilities"]
    return doc


def cdx_naming_no_image() -> dict:
    doc = fixture("cdx-api-1.json")
    del doc["metadata"]["component"]
    return doc


def cdx_empty() -> dict:
    doc = fixture("cdx-api-1.json")
    doc["components"], doc["vulnerabilities"], doc["dependencies"] = [], [], []
    return doc


@pytest.mark.parametrize("make, digest, says", [
    (trivy_without_results, D_WEB2, "no Results"),
    (trivy_empty_results, D_WEB2, "no Results"),
    (trivy_secrets_only, D_WEB2, "no package (os-pkgs / lang-pkgs) result"),
    (trivy_naming_no_digest, D_WEB2, "names no image digest"),
    (grype_naming_no_digest, D_WEB2, "names no image digest"),
    (grype_of_a_directory, D_WEB2, "scanned a directory, not a container image"),
    (cdx_sbom_without_vulnerabilities, D_API1, "no vulnerabilities section"),
    (cdx_naming_no_image, D_API1, "names no image digest"),
    (cdx_empty, D_API1, "lists neither components nor vulnerabilities"),
])
def test_a_document_that_is_not_a_completed_scan_of_this_image_fails(tmp_path, make, digest, says):
    name = file_doc(tmp_path, digest, "report.json", make())
    v, inputs = run(tmp_path, release("r", web=digest), **OPEN)
    assert v.verdict == Verdict.FAIL and v.reasons == (INCOMPLETE,), v.message
    assert f"web (sha256:{digest[7:19]}): report {name} is not a completed scan of this image: " in v.message
    assert says in v.message
    assert "complete scan of the image by its digest" in v.remedy
    assert v.details["components"]["web"]["status"] == "incomplete"


def test_an_incomplete_report_fails_even_beside_a_complete_one(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    name = file_doc(tmp_path, D_WEB2, "sbom.cdx.json", {**cdx_sbom_without_vulnerabilities(),
                                                        "metadata": fixture("cdx-vex-web-2.json")["metadata"]})
    v, _ = run(tmp_path, release("r", web=D_WEB2), **OPEN)
    assert v.verdict == Verdict.FAIL and v.reasons == (INCOMPLETE,)
    assert f"report {name} is not a completed scan" in v.message and "trivy-web-2" not in v.message


def test_an_incomplete_scan_of_the_deployed_release_is_no_baseline(tmp_path):
    file_reports(tmp_path, D_WEB2, "trivy-web-2.json")
    file_doc(tmp_path, D_WEB1, "trivy.json", {**fixture("trivy-web-1.json"), "Results": []})
    v, _ = run(tmp_path, release("new", web=D_WEB2), release("old", web=D_WEB1), max_critical=10)
    assert v.reasons == ("security.new_critical",)
    assert v.details["baseline"] == {"release": "old", "incomplete_for": ["web"]}


@pytest.mark.parametrize("name, digest", [
    ("trivy-web-1.json", D_WEB1), ("grype-web-1.json", D_WEB1), ("trivy-web-2.json", D_WEB2),
    ("grype-web-2.json", D_WEB2), ("cdx-vex-web-2.json", D_WEB2), ("cdx-api-1.json", D_API1),
    ("trivy-worker-1.json", D_WORKER1),
])
def test_every_real_format_fixture_is_a_completed_scan_naming_its_digest(name, digest):
    report = parse_report((SCANS / name).read_bytes(), name=name)
    assert report.incomplete is None
    assert digest in report.image_digests


def test_a_clean_scan_still_passes(tmp_path):
    file_reports(tmp_path, D_WORKER1, "trivy-worker-1.json")  # Results with no Vulnerabilities: clean
    v, _ = run(tmp_path, release("r", web=D_WORKER1))
    assert v.verdict == Verdict.PASS, v.message
