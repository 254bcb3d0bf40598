"""Merging one digest's findings (`merge_findings`) and applying KEV/EPSS (`enrich`), for the gate's decision."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stella_operators.gates.security.reports._read import _unique
from stella_operators.gates.security.reports.model import Finding, _primary_id


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
