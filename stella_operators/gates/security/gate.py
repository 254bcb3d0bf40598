"""The security gate: scan results per image digest against the environment's thresholds.

    gates:
      - type: security
        reports: /srv/stella/scans        # FolderSource root (see sources.py for the layout)
        max_critical: 0                   # None / null = no limit
        max_high: 5
        block_kev: true
        epss_threshold: 0.5               # a finding with EPSS >= 0.5 fails
        reachable_only: false
        block_new_criticals: true
        kev_file: /srv/stella/feeds/known_exploited_vulnerabilities.json
        epss_file: /srv/stella/feeds/epss_scores-current.csv

`collect` reads and parses every report of every candidate digest (and of the digests of the
release currently deployed, for the new-critical delta) and records the parsed findings, a
sha256 of each raw report, the KEV/EPSS enrichment entries that concern those findings, and the
config. `decide` is pure over that record:

* fail closed: a candidate digest without a report -> `security.report_missing`; a report that
  cannot be read or parsed -> `security.report_unreadable`; a report that names another image
  -> `security.report_digest_mismatch`; a report that names no image digest, or is not a
  completed vulnerability scan (Trivy without `Results` or without a package result, Grype of
  a directory, CycloneDX without a `vulnerabilities` section) -> `security.report_incomplete`
  (such a document says nothing about this image, so it never counts as clean); a configured
  KEV/EPSS file that cannot be read -> `security.enrichment_unreadable`.
* per component (digest), after deduplicating the same vulnerability + package across reports:
  VEX-suppressed findings never count; findings marked not reachable do not count when
  `reachable_only` (unknown reachability counts). Then `security.critical_over_max`,
  `security.high_over_max`, `security.medium_over_max` (count > max), `security.kev_present`,
  `security.epss_over_threshold`.
* `security.new_critical`: a counted critical whose vulnerability + package is nowhere in the
  release currently deployed in the environment (any component, any severity, suppressed or not)
  fails even under `max_critical`. With no release deployed yet there is no baseline and no delta
  check; when a deployed digest's report is missing or unreadable the baseline is incomplete and
  criticals not found in the readable part count as new (fail closed).
"""

from __future__ import annotations

import builtins
import hashlib
import math
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stella_operators.gates.contract import Decision, PromotionContext, Verdict
from stella_operators.gates.security.reports import (
    EnrichmentError,
    Finding,
    ReportFormatError,
    Severity,
    enrich,
    merge_findings,
    parse_epss,
    parse_kev,
    parse_report,
)
from stella_operators.gates.security.sources import FolderSource, ReportSource, ReportSourceError
from stella_operators.release.model import Release

R_MISSING = "security.report_missing"
R_UNREADABLE = "security.report_unreadable"
R_MISMATCH = "security.report_digest_mismatch"
R_INCOMPLETE = "security.report_incomplete"
R_ENRICHMENT = "security.enrichment_unreadable"
R_CRITICAL = "security.critical_over_max"
R_HIGH = "security.high_over_max"
R_MEDIUM = "security.medium_over_max"
R_KEV = "security.kev_present"
R_EPSS = "security.epss_over_threshold"
R_NEW_CRITICAL = "security.new_critical"

MAX_IDS_IN_MESSAGE = 5
# Where each format names the scanned image's digest (said when a report names none).
_DIGEST_FIELDS = {
    "trivy": "Trivy reads it from the registry into Metadata.RepoDigests: scan REPO@sha256:..., not a local tag",
    "grype": "Grype writes it to source.target.manifestDigest / repoDigests: scan REPO@sha256:...",
    "cyclonedx": "CycloneDX names it in metadata.component (purl pkg:oci/...@sha256:... or a RepoDigest property)",
}
_LIMITS = ((Severity.CRITICAL, "max_critical", R_CRITICAL), (Severity.HIGH, "max_high", R_HIGH),
           (Severity.MEDIUM, "max_medium", R_MEDIUM))


class SecurityGateConfig(BaseModel):
    """The estate's settings for one security gate (extra keys are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reports: str = Field(min_length=1, description="folder of scan reports filed by digest (FolderSource root)")
    max_critical: int | None = Field(default=0, ge=0)
    max_high: int | None = Field(default=None, ge=0)
    max_medium: int | None = Field(default=None, ge=0)
    block_kev: bool = True
    epss_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    reachable_only: bool = False
    block_new_criticals: bool = True
    kev_file: str | None = Field(default=None, min_length=1)
    epss_file: str | None = Field(default=None, min_length=1)

    @field_validator("epss_threshold")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a number between 0 and 1")
        return v


def _short(digest: str) -> str:
    return digest[:19] if digest.startswith("sha256:") else digest[:12]


def _cap(items: list[str], n: int = MAX_IDS_IN_MESSAGE) -> str:
    items = list(dict.fromkeys(items))
    return ", ".join(items[:n]) + (f", ... (+{len(items) - n} more)" if len(items) > n else "")


class SecurityGate:
    """Gate type `security` (entry point `stella_operators.gates`)."""

    type: ClassVar[str] = "security"
    Config: ClassVar[builtins.type[SecurityGateConfig]] = SecurityGateConfig

    def __init__(self, name: str, config: SecurityGateConfig, *, source: ReportSource | None = None):
        self.name = name
        self.config = config
        self.source: ReportSource = source if source is not None else FolderSource(config.reports)

    # ---------------------------------------------------------------------------------- collect

    def _read_digest(self, repository: str, digest: str) -> dict[str, Any]:
        describe = getattr(self.source, "describe", None)
        where = describe(digest) if callable(describe) else None
        try:
            raws = self.source.find(repository, digest)
        except ReportSourceError as exc:
            return {"status": "error", "error": str(exc), "looked_in": where, "reports": []}
        if not raws:
            return {"status": "missing", "error": None, "looked_in": where, "reports": []}
        reports, errors = [], []
        for raw in raws:
            entry: dict[str, Any] = {"name": raw.name, "sha256": raw.sha256}
            try:
                parsed = parse_report(raw.data if raw.data is not None else raw.text, name=raw.name)
            except ReportFormatError as exc:
                entry["error"] = str(exc)
                errors.append(str(exc))
            else:
                entry.update(parsed.model_dump(mode="json"))
            reports.append(entry)
        return {"status": "error" if errors else "ok", "error": "; ".join(errors) or None, "looked_in": where,
                "reports": reports}

    def _read_release(self, release: Release, cache: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
        components = []
        for c in sorted(release.components, key=lambda c: c.name):
            if (c.repository, c.digest) not in cache:
                cache[(c.repository, c.digest)] = self._read_digest(c.repository, c.digest)
            components.append({"component": c.name, "repository": c.repository, "digest": c.digest,
                               **cache[(c.repository, c.digest)]})
        return {"id": release.id, "name": release.name, "content_hash": release.content_hash,
                "components": components}

    def _read_enrichment(self, kind: str, path: str | None, ids: set[str]) -> dict[str, Any] | None:
        if path is None:
            return None
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return {"file": path, "error": f"cannot read {path}: {exc.strerror or exc}"}
        entry: dict[str, Any] = {"file": path, "sha256": "sha256:" + hashlib.sha256(data).hexdigest()}
        try:
            if kind == "kev":
                kev = parse_kev(data)
                entry.update(catalog_version=kev.catalog_version, date_released=kev.date_released,
                             listed=sorted(ids & kev.cves))
            else:
                epss = parse_epss(data)
                entry.update(model_version=epss.model_version, score_date=epss.score_date,
                             scores={i: epss.scores[i] for i in sorted(ids) if i in epss.scores})
        except EnrichmentError as exc:
            return {"file": path, "sha256": entry["sha256"], "error": str(exc)}
        return entry

    def collect(self, ctx: PromotionContext) -> dict[str, Any]:
        cache: dict[tuple[str, str], dict[str, Any]] = {}
        candidate = self._read_release(ctx.release, cache)
        previous = self._read_release(ctx.previous_release, cache) if ctx.previous_release is not None else None
        ids = {i.upper() for c in candidate["components"] for r in c["reports"]
               for f in r.get("findings", ()) for i in (f["vuln_id"], *f["aliases"])}
        return {
            "gate": {"type": self.type, "name": self.name},
            "config": self.config.model_dump(mode="json"),
            "context": {"app": ctx.app, "environment": ctx.environment, "promotion_id": ctx.promotion_id},
            "candidate": candidate,
            "previous": previous,
            "enrichment": {"kev": self._read_enrichment("kev", self.config.kev_file, ids),
                           "epss": self._read_enrichment("epss", self.config.epss_file, ids)},
        }

    # ----------------------------------------------------------------------------------- decide

    def decide(self, inputs: dict[str, Any]) -> Decision:
        cfg = SecurityGateConfig.model_validate(inputs["config"])
        env = inputs.get("context", {}).get("environment", "this environment")
        issues: list[tuple[str, str]] = []          # (reason, message line)
        remedies: dict[str, str] = {}               # reason -> remedy sentence (first wins)
        details: dict[str, Any] = {"components": {}}
        fixes: dict[str, str] = {}                  # package -> fixed version, for the remedy

        enrichment = inputs.get("enrichment") or {}
        kev_ids: list[str] = []
        epss_scores: dict[str, float] = {}
        for kind, key in (("kev", "kev_file"), ("epss", "epss_file")):
            entry = enrichment.get(kind)
            if entry and entry.get("error"):
                issues.append((R_ENRICHMENT, f"{key}: {entry['error']}"))
                remedies.setdefault(R_ENRICHMENT, f"fix or refresh {key} ({entry['file']}) and promote again")
            elif entry and kind == "kev":
                kev_ids = entry.get("listed", [])
            elif entry:
                epss_scores = entry.get("scores", {})

        def findings_of(component: dict[str, Any]) -> list[Finding]:
            raw = [Finding.model_validate(f) for r in component["reports"] for f in r.get("findings", ())]
            return merge_findings(raw)

        def mismatched(component: dict[str, Any]) -> list[dict[str, Any]]:
            return [r for r in component["reports"]
                    if r.get("image_digests") and component["digest"] not in r["image_digests"]]

        def incomplete(component: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
            """(report, why) for reports that are not a completed scan naming this digest."""
            out = []
            for r in component["reports"]:
                if r.get("image_digests") and component["digest"] not in r["image_digests"]:
                    continue  # a scan of another image: mismatched
                if r.get("incomplete"):
                    out.append((r, r["incomplete"]))
                elif not r.get("image_digests"):
                    hint = _DIGEST_FIELDS.get(r.get("format", ""), "")
                    out.append((r, "it names no image digest" + (f" ({hint})" if hint else "")))
            return out

        # Baseline for the new-critical delta: everything present in the deployed release.
        previous = inputs.get("previous")
        baseline: set[tuple[str, str]] = set()
        baseline_gaps: list[str] = []
        if previous is not None:
            for pc in previous["components"]:
                if pc["status"] != "ok" or mismatched(pc) or incomplete(pc):
                    baseline_gaps.append(pc["component"])
                    continue
                baseline.update(f.key for f in findings_of(pc))
            details["baseline"] = {"release": previous.get("name"), "incomplete_for": baseline_gaps}
        else:
            details["baseline"] = {"release": None, "incomplete_for": []}

        for comp in inputs["candidate"]["components"]:
            name, digest = comp["component"], comp["digest"]
            tag = f"{name} ({_short(digest)})"
            cdet: dict[str, Any] = {"digest": digest, "status": comp["status"],
                                    "reports": [r["name"] for r in comp["reports"]], "offending": {}}
            details["components"][name] = cdet

            if comp["status"] == "missing":
                issues.append((R_MISSING, f"{tag}: no scan report" +
                               (f" (looked for {comp['looked_in']})" if comp.get("looked_in") else "")))
                where = f" ({comp['looked_in']})" if comp.get("looked_in") else ""
                remedies.setdefault(R_MISSING, "scan the image by digest and publish the report where the gate "
                                               f"reads it{where}")
                continue
            if comp["status"] != "ok":
                issues.append((R_UNREADABLE, f"{tag}: unreadable scan report: {comp.get('error')}"))
                remedies.setdefault(R_UNREADABLE, "replace the unreadable report with a complete Trivy JSON, Grype "
                                                  "JSON or CycloneDX JSON report for the digest")
                continue
            wrong, partial = mismatched(comp), incomplete(comp)
            for r in wrong:
                issues.append((R_MISMATCH, f"{tag}: report {r['name']} is for "
                                           f"{', '.join(_short(d) for d in r['image_digests'])}, not this digest"))
                remedies.setdefault(R_MISMATCH, f"rescan the image by its digest ({digest}) and file the report "
                                                "under that digest; remove the misfiled report")
            for r, why in partial:
                issues.append((R_INCOMPLETE, f"{tag}: report {r['name']} is not a completed scan of this image: {why}"))
                remedies.setdefault(R_INCOMPLETE, f"publish a complete scan of the image by its digest ({digest}), "
                                                  "one that names the digest and carries the scan's results "
                                                  "(Trivy Results, a CycloneDX vulnerabilities section), and remove "
                                                  "the incomplete report")
            if wrong or partial:
                cdet["status"] = "digest_mismatch" if wrong else "incomplete"
                continue

            findings = enrich(findings_of(comp), kev=kev_ids, epss=epss_scores)
            suppressed = [f for f in findings if f.suppressed]
            unreachable = [f for f in findings if not f.suppressed and cfg.reachable_only and f.reachable is False]
            counted = [f for f in findings if not f.suppressed and not (cfg.reachable_only and f.reachable is False)]
            by_sev = {s: [f for f in counted if f.severity == s] for s in Severity}
            cdet["counts"] = {s.value: len(by_sev[s]) for s in Severity}
            cdet["suppressed"] = sorted({f.label for f in suppressed})
            cdet["excluded_unreachable"] = sorted({f.label for f in unreachable})

            def offend(reason: str, bad: list[Finding], line: str, epss: bool = False) -> None:
                # offend() is called only within this iteration, so cdet and tag are this component's.
                cdet["offending"][reason] = sorted({f.primary_id for f in bad})  # noqa: B023
                labels = [f"{f.label} {f.epss:g}" if epss else f.label for f in bad]
                issues.append((reason, f"{tag}: {line} ({_cap(labels)})"))  # noqa: B023
                for f in bad:
                    if f.fixed_version and f.package:
                        fixes.setdefault(f.package, f.fixed_version)

            for sev, field, reason in _LIMITS:
                limit = getattr(cfg, field)
                if limit is not None and len(by_sev[sev]) > limit:
                    offend(reason, by_sev[sev], f"{len(by_sev[sev])} {sev.value} > {field} {limit}")
                    remedies.setdefault(reason, f"or raise {field} for {env} in the estate")
            if cfg.block_kev:
                kev = [f for f in counted if f.kev]
                if kev:
                    offend(R_KEV, kev, f"{len(kev)} KEV-listed, known exploited")
                    remedies.setdefault(R_KEV, f"or set block_kev: false for {env} in the estate")
            if cfg.epss_threshold is not None:
                hot = [f for f in counted if f.epss is not None and f.epss >= cfg.epss_threshold]
                if hot:
                    hot.sort(key=lambda f: -(f.epss or 0.0))
                    offend(R_EPSS, hot, f"{len(hot)} with EPSS >= {cfg.epss_threshold:g}", epss=True)
                    remedies.setdefault(R_EPSS, f"or raise epss_threshold for {env} in the estate")
            if cfg.block_new_criticals and previous is not None:
                new = [f for f in by_sev[Severity.CRITICAL] if f.key not in baseline]
                if new:
                    note = f"; no readable scan of the deployed {', '.join(baseline_gaps)}" if baseline_gaps else ""
                    offend(R_NEW_CRITICAL, new,
                           f"{len(new)} new critical vs deployed release {previous.get('name')}{note}")
                    gaps = " (or publish the deployed release's missing scans)" if baseline_gaps else ""
                    remedies.setdefault(R_NEW_CRITICAL,
                                        f"or set block_new_criticals: false for {env} in the estate{gaps}")

        reasons = tuple(dict.fromkeys(r for r, _ in issues))
        gate = inputs.get("gate", {}).get("name", self.name)
        if not issues:
            n = len(inputs["candidate"]["components"])
            return Decision(verdict=Verdict.PASS, message=f"{gate}: {n} component(s) within the security thresholds "
                                                          f"of {env}", details=details)
        return Decision(verdict=Verdict.FAIL, reasons=reasons, message=f"{gate}: " + "; ".join(m for _, m in issues),
                        remedy=self._remedy(reasons, remedies, fixes), details=details)

    @staticmethod
    def _remedy(reasons: tuple[str, ...], remedies: dict[str, str], fixes: dict[str, str]) -> str:
        parts = [remedies[r] for r in (R_MISSING, R_UNREADABLE, R_MISMATCH, R_INCOMPLETE, R_ENRICHMENT)
                 if r in reasons]
        finding_reasons = [r for r in reasons if r in (R_CRITICAL, R_HIGH, R_MEDIUM, R_KEV, R_EPSS, R_NEW_CRITICAL)]
        if finding_reasons:
            upgrade = ", ".join(f"{p} to {v}" for p, v in sorted(fixes.items())[:MAX_IDS_IN_MESSAGE])
            more = f" (+{len(fixes) - MAX_IDS_IN_MESSAGE} more)" if len(fixes) > MAX_IDS_IN_MESSAGE else ""
            fix = (f"upgrade {upgrade}{more} and rebuild" if upgrade
                   else "upgrade the affected packages to a fixed version and rebuild")
            parts.append(f"{fix}; add a VEX statement (not_affected, with justification) for findings that do "
                         "not apply; " + "; ".join(remedies[r] for r in finding_reasons))
        return " ".join(p[0].upper() + p[1:] + ("" if p.endswith(".") else ".") for p in parts)
