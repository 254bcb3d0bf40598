"""The security gate: scan reports (Trivy, Grype, CycloneDX VEX) per image digest against thresholds.

Entry point (pyproject, group `stella_operators.gates`):
    security = "stella_operators.gates.security.gate:SecurityGate"
"""

from stella_operators.gates.security.gate import SecurityGate, SecurityGateConfig
from stella_operators.gates.security.reports import (
    EnrichmentError,
    EpssScores,
    Finding,
    KevCatalog,
    ReportFormatError,
    ScanReport,
    Severity,
    detect_format,
    enrich,
    merge_findings,
    parse_epss,
    parse_kev,
    parse_report,
)
from stella_operators.gates.security.sources import FolderSource, RawReport, ReportSource, ReportSourceError

__all__ = [
    "EnrichmentError",
    "EpssScores",
    "Finding",
    "FolderSource",
    "KevCatalog",
    "RawReport",
    "ReportFormatError",
    "ReportSource",
    "ReportSourceError",
    "ScanReport",
    "SecurityGate",
    "SecurityGateConfig",
    "Severity",
    "detect_format",
    "enrich",
    "merge_findings",
    "parse_epss",
    "parse_kev",
    "parse_report",
]
