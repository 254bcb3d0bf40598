"""Evidence sealing and verification against the raw floor, and the audit chain walk.

Floor (measured in the same run, same statements): RFC 8785 canonical JSON of the in-toto
statement + SHA-256 + one Ed25519 signature (seal), or + one Ed25519 verification and the
canonical-form check (verify), with nothing else: what any correct implementation must pay.
Two floors: canonical JSON by the reference `rfc8785` library, and by our own encoder (Python's
C JSON encoder where it provably writes RFC 8785's bytes, evidence/canonical.py); the second is
the stricter baseline, since we use that encoder too. `seal_evidence` adds the secret scan, the
subjects model and the record; `verify_evidence` adds the DSSE structure checks, the statement
checks, the record/statement agreement and the revocation check.
Chain: a ledger (SQLite file) with N audit events, then what `stella audit verify` does: read
every event and walk the hash chain (each event re-hashed).

Usage: python benchmarks/evidence_throughput.py [--records 2000] [--events 10000] [--repeat 3]
Goals (issue 9): seal and verify within 1.5x of the floor; 10,000 events verified in < 0.5 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import rfc8785

from stella_operators.evidence import SigningKey
from stella_operators.evidence.canonical import canonical_plain
from stella_operators.evidence.envelope import PAYLOAD_TYPE, build_statement, pae, seal_evidence, verify_evidence
from stella_operators.evidence.keys import TrustedKeys
from stella_operators.ledger import Ledger
from stella_operators.ledger.audit import append_audit
from stella_operators.ledger.audit_verify import verify_audit_rows

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def contents(n: int) -> list[tuple[list[tuple[str, str]], dict]]:
    """Approval-like evidence: what an approver decided about which release, and why."""
    out = []
    for i in range(n):
        digest = "sha256:" + hashlib.sha256(str(i).encode()).hexdigest()
        out.append(([("shop/web", digest)], {
            "promotion_id": f"prm-{i:06d}", "environment": "prod", "approver": f"user{i % 7}",
            "decision": "approve", "comment": "looks good after the canary, error rate flat",
            "release": {"id": f"rel-{i}", "name": f"shop-1.{i}.0", "content_hash": digest},
            "tally": {"approvals": 2, "required": 2, "rejections": 0}, "plan_hash": digest}))
    return out


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    key = SigningKey.generate()
    trusted = TrustedKeys()
    trusted.add(key.public_pem())
    items = contents(args.records)
    statements = [build_statement("approval", [], c, T0) for _, c in items]
    for st, (subs, _) in zip(statements, items, strict=True):  # same subjects as the sealed records
        st["subject"] = [{"name": n, "digest": {"sha256": d.removeprefix("sha256:")}} for n, d in subs]

    def floor_seal() -> None:
        for st in statements:
            payload = rfc8785.dumps(st)
            hashlib.sha256(payload).hexdigest()
            key.sign(pae(PAYLOAD_TYPE, payload))

    def floor_seal_fast() -> None:  # the same floor with our canonical encoder (evidence/canonical.py)
        for st in statements:
            payload = canonical_plain(st)
            hashlib.sha256(payload).hexdigest()
            key.sign(pae(PAYLOAD_TYPE, payload))

    def seal() -> None:
        for subs, content in items:
            seal_evidence("approval", subs, content, key, T0)

    records = [seal_evidence("approval", s, c, key, T0) for s, c in items]
    signed = [(rfc8785.dumps(st), key.sign(pae(PAYLOAD_TYPE, rfc8785.dumps(st)))) for st in statements]
    public = key.public_key

    def floor_verify() -> None:
        for payload, sig in signed:
            hashlib.sha256(payload).hexdigest()
            public.verify(sig, pae(PAYLOAD_TYPE, payload))
            rfc8785.dumps(json.loads(payload))

    def floor_verify_fast() -> None:
        for payload, sig in signed:
            hashlib.sha256(payload).hexdigest()
            public.verify(sig, pae(PAYLOAD_TYPE, payload))
            canonical_plain(json.loads(payload))

    def verify() -> None:
        for r in records:
            assert verify_evidence(r, trusted).ok

    n = args.records
    fs, fs2, s = best(floor_seal, args.repeat), best(floor_seal_fast, args.repeat), best(seal, args.repeat)
    fv, fv2, v = best(floor_verify, args.repeat), best(floor_verify_fast, args.repeat), best(verify, args.repeat)
    print(f"seal:   {n / s:8.0f}/s   floor {n / fs:8.0f}/s (rfc8785) {n / fs2:8.0f}/s (C encoder)   "
          f"ratio {s / fs:.2f}x / {s / fs2:.2f}x")
    print(f"verify: {n / v:8.0f}/s   floor {n / fv:8.0f}/s (rfc8785) {n / fv2:8.0f}/s (C encoder)   "
          f"ratio {v / fv:.2f}x / {v / fv2:.2f}x")

    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger.open(f"sqlite:///{tmp}/ledger.db")
        with ledger.engine.begin() as conn:
            for i in range(args.events):
                append_audit(conn, f"user{i % 7}", "approval.recorded", f"prm-{i // 3:06d}",
                             {"decision": "approve", "release": f"shop-1.{i}.0", "count": i % 3},
                             at=T0 + timedelta(seconds=i))

        def chain() -> None:
            report = verify_audit_rows(ledger.audit_events())
            assert report.ok and report.events == args.events

        def read_only() -> None:
            ledger.audit_events()

        c, r = best(chain, args.repeat), best(read_only, args.repeat)
        print(f"chain:  {args.events} events verified in {c:.3f} s (reading them: {r:.3f} s; goal < 0.5 s)")



if __name__ == "__main__":
    main()
