"""Canonical JSON (RFC 8785 / JCS) and SHA-256: the bytes that get hashed and signed.

Most of what we hash (audit events, approvals, gate decisions) holds only strings, booleans,
null, integers within +-(2^53 - 1) and ASCII object keys. For such values RFC 8785's output is exactly
what Python's C JSON encoder writes with sorted keys, no spaces and no ASCII escaping: the same
key order (UTF-16 and code-point order agree on ASCII), the same string escapes (the short forms
for backspace, form feed, newline, carriage return and tab, other control characters as lowercase
backslash-u00xx, nothing else escaped) and the same integers. Those
values take the C encoder (about 3x faster than the pure-Python `rfc8785`); anything else (floats,
larger integers, non-ASCII keys, lone surrogates) goes to `rfc8785`. tests/unit/evidence/
test_canonical.py checks the two agree on random values, including the awkward ones.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

import rfc8785
from pydantic import BaseModel


def iso_utc(dt: datetime) -> str:
    """ISO 8601 text for a datetime; aware values are moved to UTC and written with `Z`.

    Naive datetimes are written as they are (no zone is invented for them).
    """
    if dt.tzinfo is None:
        return dt.isoformat()
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def to_jsonable(obj: Any) -> Any:
    """Plain JSON values (dict/list/str/int/float/bool/None) from the richer types we hash.

    A value that is plain already (the common case) is returned as it is, not copied."""
    if is_plain(obj):
        return obj
    return _jsonable(obj)


def _jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)):
        if isinstance(obj, Enum):
            return obj.value
        return obj
    if isinstance(obj, datetime):
        return iso_utc(obj)
    if isinstance(obj, date):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, Enum):
                k = k.value
            if not isinstance(k, str):
                raise TypeError(f"JSON object keys must be strings, got {type(k).__name__} {k!r}")
            out[k] = _jsonable(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable for canonical JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
_SAFE_INT = 2**53 - 1  # rfc8785 refuses integers outside +-(2^53 - 1) (IntegerDomainError)


def is_plain(obj: Any) -> bool:
    """True when `obj` is plain JSON the C encoder writes exactly as RFC 8785 does (see the module
    docstring): only dict (ASCII str keys), list, tuple, str, bool, None and int in the safe range."""
    stack = [obj]
    while stack:
        o = stack.pop()
        t = type(o)
        if t is str or t is bool or o is None:
            continue
        if t is dict:
            for k in o:
                if type(k) is not str or not k.isascii():
                    return False
            stack.extend(o.values())
        elif t is list or t is tuple:
            stack.extend(o)
        elif t is int:
            if not -_SAFE_INT <= o <= _SAFE_INT:
                return False
        else:
            return False
    return True


def canonical_plain(value: Any, *, checked: bool = False) -> bytes:
    """RFC 8785 bytes of a value that is already plain JSON (what `to_jsonable` returns).
    `checked=True`: the caller has just seen `is_plain(value)` hold."""
    if checked or is_plain(value):
        try:
            return _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let rfc8785 say what is wrong with it
    return rfc8785.dumps(value)


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of `obj` (datetimes become ISO strings first)."""
    return canonical_plain(to_jsonable(obj))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
