"""Private reading helpers shared by the report parsers: JSON loading, typed field access, purls, VEX."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

from stella_operators.gates.security.reports.model import (
    _DIGEST,
    _DIGEST_IN_REF,
    _FALSE,
    _SEVERITY_WORDS,
    _TRUE,
    REACHABILITY_JUSTIFICATIONS,
    SUPPORTED_FORMATS,
    SUPPRESSING_STATES,
    ReportFormatError,
    Severity,
    _primary_id,  # noqa: F401  (defined with `Finding`, which needs it; re-exported for the parsers)
)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _load_json(data: str | bytes, report: str) -> Any:
    if isinstance(data, bytes):
        if data[:2] == b"\x1f\x8b":
            raise ReportFormatError(report, "gzip-compressed; store the report uncompressed")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ReportFormatError(report, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = data.lstrip("\ufeff")
    head = text.lstrip()[:1]
    if not head:
        raise ReportFormatError(report, "empty file")
    if head == "<":
        raise ReportFormatError(report, f"looks like XML; only JSON reports are supported ({SUPPORTED_FORMATS})")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ReportFormatError(report, f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    except ValueError as exc:
        raise ReportFormatError(report, f"not valid JSON ({exc})") from None


class _Malformed(Exception):
    pass


def _obj(v: Any, where: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _Malformed(f"{where} must be an object, got {type(v).__name__}")
    return v


def _arr(v: Any, where: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Malformed(f"{where} must be an array, got {type(v).__name__}")
    return v


def _text(v: Any, where: str, *, required: bool = False) -> str | None:
    if v is None or v == "":
        if required:
            raise _Malformed(f"{where} is missing")
        return None
    if not isinstance(v, str):
        raise _Malformed(f"{where} must be a string, got {type(v).__name__}")
    return v


def _severity(v: Any, where: str) -> Severity:
    if v is None:
        return Severity.UNKNOWN
    if not isinstance(v, str) or v.strip().lower() not in _SEVERITY_WORDS:
        raise _Malformed(f"{where}: unrecognized severity {v!r}")
    return _SEVERITY_WORDS[v.strip().lower()]


def _probability(v: Any, where: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise _Malformed(f"{where}: {v!r} is not a number") from None
    if isinstance(v, bool) or not math.isfinite(x) or not 0.0 <= x <= 1.0:
        raise _Malformed(f"{where}: EPSS {v} is not a probability between 0 and 1")
    return x


def _flag(v: Any, where: str) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
        return v.strip().lower() in _TRUE
    raise _Malformed(f"{where}: {v!r} is not true/false")


def _digest_of_ref(ref: Any) -> str | None:
    """`repo@sha256:...` (or a bare digest, or a purl with an encoded digest) -> `sha256:...`."""
    if not isinstance(ref, str):
        return None
    text = unquote(ref)
    if _DIGEST.match(text):
        return text
    m = _DIGEST_IN_REF.search(text)
    return m.group(1) if m else None


def _unique(items: Iterable[str | None]) -> tuple[str, ...]:
    out: list[str] = []
    for i in items:
        if i and i not in out:
            out.append(i)
    return tuple(out)


def purl_package(purl: object) -> tuple[str, str | None] | None:
    """Package name (as scanners print it) and version from a package URL, or None if not a purl.

    `pkg:maven/org.x/lib@1` -> `org.x:lib`; `pkg:npm/%40scope/lib` -> `@scope/lib`;
    `pkg:golang/golang.org/x/net` -> `golang.org/x/net`; others -> the name. A deb `epoch`
    qualifier is put back in front of the version (`1:1.2.13`), as dpkg and Trivy write it.
    """
    if not isinstance(purl, str) or not purl.startswith("pkg:"):
        return None
    body = purl[4:].split("#", 1)[0]
    body, _, qualifiers = body.partition("?")
    path, at, version = body.rpartition("@")
    if not at:
        path, version = body, ""
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    if len(parts) < 2:
        return None
    ptype, namespace, name = parts[0].lower(), parts[1:-1], parts[-1]
    if ptype == "maven" and namespace:
        pkg = ":".join(["/".join(namespace) if len(namespace) > 1 else namespace[0], name])
    elif ptype in ("npm", "golang", "github", "composer", "swift") and namespace:
        pkg = "/".join([*namespace, name])
    else:
        pkg = name
    ver = unquote(version) or None
    if ver and ptype == "deb":
        for q in qualifiers.split("&"):
            k, _, v = q.partition("=")
            if k == "epoch" and v and v != "0":
                ver = f"{unquote(v)}:{ver}"
    return pkg, ver


def _vex_statement(state: str | None, justification: str | None, source: str) -> dict[str, Any]:
    """suppressed / reachable / reason for a VEX state + justification (see the module docstring)."""
    if state not in SUPPRESSING_STATES:
        return {"suppressed": False, "suppression_reason": None, "vex_state": state}
    if state == "not_affected" and justification in REACHABILITY_JUSTIFICATIONS:
        return {"suppressed": False, "suppression_reason": None, "vex_state": state, "reachable": False}
    reason = f"{source}: {state}" + (f" ({justification})" if justification else "")
    return {"suppressed": True, "suppression_reason": reason, "vex_state": state}
