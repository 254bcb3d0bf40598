"""`stella audit verify | checkpoint`: the hash-chained audit log and its signed checkpoints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stella_operators.cli.common import open_ledger
from stella_operators.cli.evidence import trust_store


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the hash-chained audit log (and check it against signed checkpoints): one line per
    changed, removed, inserted, reordered or cut event, exit 1; else one ok line, exit 0."""
    from stella_operators.evidence.trust import TrustStoreError
    from stella_operators.ledger.audit_checkpoint import (
        CheckpointError,
        check_checkpoint,
        read_checkpoint,
    )
    from stella_operators.ledger.audit_verify import report_lines, verify_audit_rows

    rows = open_ledger(args).audit_events()
    report = verify_audit_rows(rows)
    lines = [p.line() for p in report.problems]
    if args.checkpoint:
        try:
            store = trust_store(args)
        except TrustStoreError as exc:
            print(f"stella: cannot verify checkpoints: {exc}", file=sys.stderr)
            return 2
        for path in args.checkpoint:
            try:
                checkpoint = read_checkpoint(Path(path).read_bytes(), store.keys)
            except CheckpointError as exc:
                lines.append(f"INVALID: checkpoint {path}: {exc}")
                continue
            lines += [p.line() for p in check_checkpoint(rows, checkpoint)]
    if lines:
        print("\n".join(lines))
        return 1
    held = f"; {len(args.checkpoint)} checkpoint(s) hold" if args.checkpoint else ""
    print(report_lines(report)[0] + held)
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    """Sign (event count, head hash) with the configured key into a file kept outside the database."""
    from datetime import UTC, datetime

    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger.audit_checkpoint import make_checkpoint

    out = Path(args.output)
    if out.exists():
        print(f"stella: {out} exists; checkpoints are records, never overwritten", file=sys.stderr)
        return 2
    rows = open_ledger(args).audit_events()
    key = SigningKeyHook().get_conn()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(make_checkpoint(rows, key, datetime.now(UTC)))
    head = rows[-1].hash if rows else "none"
    print(f"wrote {out}: {len(rows)} events, head {head}, signed by {key.key_id}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    au = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_cmd", required=True)
    av = au.add_parser("verify", help="walk the hash chain; name the first changed, removed, inserted or reordered "
                                      "event (exit 1), else print the event count and head hash")
    av.add_argument("--checkpoint", action="append", metavar="FILE",
                    help="a signed checkpoint (from `stella audit checkpoint`): also detects events cut off the end")
    av.add_argument("--trust", action="append", metavar="PATH",
                    help="trusted PEM public keys for the checkpoints (default: the trust store, as evidence verify)")
    av.set_defaults(func=cmd_audit_verify, public_key=None, trust_ledger_keys=False)
    ac = au.add_parser("checkpoint", help="sign the chain's event count and head hash into FILE (keep it elsewhere)")
    ac.add_argument("-o", "--output", required=True, metavar="FILE")
    ac.set_defaults(func=cmd_audit_checkpoint)

