"""The evidence locker: files an auditor wants, content-addressed, outside the database.

Layout under the locker's base (a local folder or `s3://bucket/prefix`, see hooks/locker.py):

    objects/sha256/ab/cdef...      the bytes, named by their SHA-256 (address `sha256:abcdef...`);
                                   written once, never rewritten (a put of the same bytes is a no-op)
    index/<kind>/<subject>.json    what a person looks up: one file per promotion, release or audit
                                   checkpoint, listing its files (name, what it is, address, size)
    holds/<kind>/<subject>.json    a legal hold on that index: prune never removes it or its objects

Reads are verified: `get` re-hashes the bytes and raises `LockerTampered` naming the address when
they changed. Retention is per index kind (`keep N days` or `forever`, counted from the index's
last update); `prune` deletes expired indexes that are not on hold, then only the objects that a
deleted index referenced and no kept index references. Objects no index references (a put whose
index write has not happened yet, or failed) are never pruned: that would race a writer.

Plain Python over a path-like base (`pathlib.Path` or Airflow's `ObjectStoragePath`, which share the
methods used here), so the domain and its tests need no Airflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self

ADDRESS_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,200}$")  # index kinds and subjects: one path segment
INDEX_FORMAT = "stella-locker-index/v1"
DEFAULT_RETENTION = {"promotion": None, "release": None, "checkpoint": 400}  # days; None = forever


class LockerPath(Protocol):
    """What the locker needs of its base path: `pathlib.Path` and `ObjectStoragePath` both qualify."""

    def __truediv__(self, other: str) -> Self: ...
    @property
    def name(self) -> str: ...
    @property
    def parent(self) -> Self: ...
    def read_bytes(self) -> bytes: ...
    def write_bytes(self, data: bytes) -> int: ...
    def exists(self) -> bool: ...
    def is_dir(self) -> bool: ...
    def iterdir(self) -> Iterator[Self]: ...
    def unlink(self) -> None: ...
    def mkdir(self, mode: int = ..., parents: bool = ..., exist_ok: bool = ...) -> None: ...


class LockerError(Exception):
    """The locker cannot do what was asked (the message says what, where and how to fix it)."""


class LockerTampered(LockerError):
    """An object's bytes no longer hash to its address."""

    def __init__(self, address: str, actual: str):
        super().__init__(f"CHANGED: object {address} now hashes to sha256:{actual} (its bytes were altered "
                         "after they were stored)")
        self.address = address
        self.actual = actual


class LockerMissing(LockerError):
    """No object at that address."""


@dataclass(frozen=True)
class LockerEntry:
    """One file of an index: `name` as a person reads it, `kind` (evidence, sticker, lock_file,
    deploy_log, checkpoint), its address and size, and a little metadata (never secrets)."""

    name: str
    kind: str
    address: str
    size: int
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "address": self.address, "size": self.size,
                "meta": self.meta}


@dataclass(frozen=True)
class LockerIndex:
    kind: str
    subject: str
    created_at: str
    updated_at: str
    entries: tuple[LockerEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": INDEX_FORMAT, "kind": self.kind, "subject": self.subject, "created_at": self.created_at,
                "updated_at": self.updated_at, "entries": [e.to_dict() for e in self.entries]}


@dataclass(frozen=True)
class PrunePlan:
    """What prune deletes (or would, with dry_run): expired indexes, then objects only they held."""

    indexes: tuple[str, ...]          # "kind/subject"
    objects: tuple[str, ...]          # addresses
    held: tuple[str, ...]             # expired but on legal hold: kept

    def lines(self, *, dry_run: bool) -> list[str]:
        verb = "would delete" if dry_run else "deleted"
        return ([f"{verb} index {i}" for i in self.indexes] + [f"{verb} object {a}" for a in self.objects]
                + [f"kept index {h} (legal hold)" for h in self.held])


def parse_retention(text: str) -> dict[str, int | None]:
    """`promotion=forever,checkpoint=90d` -> {"promotion": None, "checkpoint": 90} over the defaults."""
    rules: dict[str, int | None] = dict(DEFAULT_RETENTION)
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, value = part.partition("=")
        kind, value = kind.strip(), value.strip().lower()
        if not NAME_RE.match(kind) or not (value == "forever" or re.fullmatch(r"\d+d?", value)):
            raise LockerError(f"retention rule {part!r}: expected KIND=forever or KIND=<days>d "
                              "(e.g. promotion=forever,checkpoint=90d)")
        rules[kind] = None if value == "forever" else int(value.rstrip("d"))
    return rules


def address_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _now_iso(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _segment(value: str, what: str) -> str:
    if not NAME_RE.match(value):
        raise LockerError(f"{what} {value!r} cannot name a locker file: use letters, digits and _.:@+- only")
    return value


class EvidenceLocker:
    """A content-addressed store of evidence files under `base` (see the module docstring)."""

    def __init__(self, base: LockerPath, *, retention: Mapping[str, int | None] | None = None,
                 local: bool = False, where: str | None = None,
                 forget: Callable[[LockerPath], None] | None = None):
        self.base = base
        # Object stores cache what they listed (s3fs: size and ETag, and reads then insist on that
        # ETag): `forget(path)` drops it before a read, so bytes changed behind our back are read and
        # reported as changed instead of failing as a cache mismatch.
        self.forget = forget
        self.retention = dict(DEFAULT_RETENTION if retention is None else retention)
        self.local = local  # a local folder needs its folders made; object stores have none
        self.where = where or str(base)

    # -- objects -------------------------------------------------------------------------------
    def _object_path(self, address: str) -> LockerPath:
        if not ADDRESS_RE.match(address):
            raise LockerError(f"{address!r} is not a locker address (sha256:<64 hex digits>)")
        digest = address.split(":", 1)[1]
        return self.base / "objects" / "sha256" / digest[:2] / digest[2:]

    def _write(self, path: LockerPath, data: bytes) -> None:
        if self.local:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def put(self, data: bytes) -> str:
        """Store `data`; its address. Idempotent: bytes already stored are not written again."""
        address = address_of(data)
        path = self._object_path(address)
        if not path.exists():
            self._write(path, data)
        return address

    def get(self, address: str) -> bytes:
        """The bytes at `address`, re-hashed: LockerTampered if they changed, LockerMissing if gone."""
        path = self._object_path(address)
        if self.forget is not None:
            self.forget(path)
        if not path.exists():
            raise LockerMissing(f"MISSING: no object {address} in the locker at {self.where}")
        data = path.read_bytes()
        actual = address_of(data)
        if actual != address:
            raise LockerTampered(address, actual.split(":", 1)[1])
        return data

    def addresses(self) -> list[str]:
        """Every stored object's address (by file name; `verify` checks the bytes)."""
        root = self.base / "objects" / "sha256"
        if not root.exists():
            return []
        out = []
        for fan in root.iterdir():
            if fan.is_dir():
                out += [f"sha256:{fan.name}{obj.name}" for obj in fan.iterdir()]
        return sorted(out)

    # -- indexes -------------------------------------------------------------------------------
    def _index_path(self, kind: str, subject: str) -> LockerPath:
        return self.base / "index" / _segment(kind, "index kind") / f"{_segment(subject, 'subject')}.json"

    def _hold_path(self, kind: str, subject: str) -> LockerPath:
        return self.base / "holds" / _segment(kind, "index kind") / f"{_segment(subject, 'subject')}.json"

    def add(self, kind: str, subject: str, files: list[tuple[str, str, bytes, dict[str, Any]]],
            now: datetime | None = None) -> LockerIndex:
        """Put each (name, file kind, bytes, meta) and list it in index `kind/subject` (created if
        new). Idempotent: an unchanged set of files leaves the index as it was."""
        current = self.index(kind, subject)
        entries = {e.name: e for e in (current.entries if current else ())}
        changed = current is None
        for name, file_kind, data, meta in files:
            entry = LockerEntry(name, file_kind, self.put(data), len(data), dict(meta))
            if entries.get(name) != entry:
                entries[name], changed = entry, True
        if not changed and current is not None:
            return current
        stamp = _now_iso(now)
        index = LockerIndex(kind, subject, current.created_at if current else stamp, stamp,
                            tuple(sorted(entries.values(), key=lambda e: e.name)))
        self._write(self._index_path(kind, subject), json.dumps(index.to_dict(), indent=1, sort_keys=True).encode())
        return index

    def index(self, kind: str, subject: str) -> LockerIndex | None:
        path = self._index_path(kind, subject)
        if not path.exists():
            return None
        return self._read_index(path, f"{kind}/{subject}")

    def _read_index(self, path: LockerPath, label: str) -> LockerIndex:
        try:
            doc = json.loads(path.read_bytes())
            return LockerIndex(doc["kind"], doc["subject"], doc["created_at"], doc["updated_at"],
                               tuple(LockerEntry(e["name"], e["kind"], e["address"], int(e["size"]),
                                                 e.get("meta") or {}) for e in doc["entries"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise LockerError(f"index {label} in the locker at {self.where} is unreadable: {exc}") from None

    def indexes(self, kind: str | None = None) -> list[LockerIndex]:
        """Every index (of `kind`), sorted by kind then subject."""
        root = self.base / "index"
        if not root.exists():
            return []
        kinds = [root / _segment(kind, "index kind")] if kind else [k for k in root.iterdir() if k.is_dir()]
        out = []
        for folder in kinds:
            if folder.exists():
                out += [self._read_index(p, f"{folder.name}/{p.name}") for p in folder.iterdir()
                        if p.name.endswith(".json")]
        return sorted(out, key=lambda i: (i.kind, i.subject))

    # -- legal holds ---------------------------------------------------------------------------
    def hold(self, kind: str, subject: str, *, by: str, reason: str, now: datetime | None = None) -> None:
        if not reason.strip():
            raise LockerError("a legal hold needs a reason")
        doc = {"kind": kind, "subject": subject, "by": by, "reason": reason, "at": _now_iso(now)}
        self._write(self._hold_path(kind, subject), json.dumps(doc, sort_keys=True).encode())

    def release_hold(self, kind: str, subject: str) -> bool:
        path = self._hold_path(kind, subject)
        if not path.exists():
            return False
        path.unlink()
        return True

    def is_held(self, kind: str, subject: str) -> bool:
        return self._hold_path(kind, subject).exists()

    # -- verification and retention ------------------------------------------------------------
    def verify(self) -> list[str]:
        """One line per problem: an object whose bytes changed, an index listing a missing object."""
        problems = []
        present = set(self.addresses())
        for address in sorted(present):
            try:
                self.get(address)
            except LockerError as exc:
                problems.append(str(exc))
        for index in self.indexes():
            problems += [f"MISSING: index {index.kind}/{index.subject} lists {e.name} at {e.address}, which is "
                         "not in the locker" for e in index.entries if e.address not in present]
        return problems

    def expired(self, index: LockerIndex, now: datetime) -> bool:
        days = self.retention.get(index.kind)
        return days is not None and _parse_iso(index.updated_at) + timedelta(days=days) < now

    def prune(self, *, dry_run: bool, now: datetime | None = None) -> PrunePlan:
        """Delete expired indexes (never one on legal hold, never the newest checkpoint) and the
        objects only they referenced; with `dry_run`, only say what would go."""
        moment = now or datetime.now(UTC)
        everything = self.indexes()
        newest_checkpoint = max((i.subject for i in everything if i.kind == "checkpoint"), default=None)
        gone, kept, held = [], [], []
        for index in everything:
            protected = index.kind == "checkpoint" and index.subject == newest_checkpoint
            if not self.expired(index, moment) or protected:
                kept.append(index)
            elif self.is_held(index.kind, index.subject):
                held.append(index)
            else:
                gone.append(index)
        still_needed = {e.address for i in kept + held for e in i.entries}
        objects = sorted({e.address for i in gone for e in i.entries} - still_needed)
        plan = PrunePlan(tuple(f"{i.kind}/{i.subject}" for i in gone), tuple(objects),
                         tuple(f"{i.kind}/{i.subject}" for i in held))
        if not dry_run:
            for index in gone:  # the index first: a crash half-way leaves unindexed objects, never dangling entries
                self._index_path(index.kind, index.subject).unlink()
            for address in objects:
                path = self._object_path(address)
                if path.exists():
                    path.unlink()
        return plan
