"""Enrichment files: the CISA KEV catalogue (`parse_kev`) and FIRST's EPSS scores (`parse_epss`)."""

from __future__ import annotations

import csv
import gzip
import io
import json

from pydantic import BaseModel, ConfigDict

from stella_operators.gates.security.reports._read import _Malformed, _probability
from stella_operators.gates.security.reports.model import EnrichmentError


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
