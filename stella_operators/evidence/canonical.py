"""Canonical JSON (RFC 8785 / JCS) and SHA-256: the bytes that get hashed and signed."""

from __future__ import annotations

import hashlib
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
    """Plain JSON values (dict/list/str/int/float/bool/None) from the richer types we hash."""
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
            out[k] = to_jsonable(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable for canonical JSON")


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of `obj` (datetimes become ISO strings first)."""
    return rfc8785.dumps(to_jsonable(obj))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
