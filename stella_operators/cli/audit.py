"""`stella audit verify | checkpoint`: the hash-chained audit log and its signed checkpoints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stella_operators.cli.common import open_ledger
from stella_operators.cli.evidence import trust_store
from stella_operators.cli.locker import open_locker


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Walk the hash-chained audit log (and check it against signed checkpoints): one line per
    changed, removed, inserted, reordered or cut event, exit 1; else one ok line, exit 0."""
    from stella_operators.evidence.locker import LockerTampered
    from stella_operators.evidence.locker_sync import latest_checkpoint
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
    checkpoints = [(path, Path(path).read_bytes()) for path in args.checkpoint or []]
    if args.use_locker:
        try:
            newest = latest_checkpoint(open_locker(args))
        except LockerTampered as exc:
            lines.append(f"INVALID: the locker's newest checkpoint: {exc}")
            newest = None
        except Exception as exc:  # noqa: BLE001 - unreachable locker: say so, never skip it silently
            print(f"stella: cannot read the evidence locker's checkpoints ({type(exc).__name__}: {exc}); "
                  "fix STELLA_LOCKER_URL / STELLA_LOCKER_CONN_ID, or pass --no-locker", file=sys.stderr)
            return 2
        if newest is not None:
            checkpoints.append((f"locker checkpoint/{newest[0]}", newest[1]))
    if checkpoints:
        try:
            store = trust_store(args)
        except TrustStoreError as exc:
            print(f"stella: cannot verify checkpoints: {exc}", file=sys.stderr)
            return 2
        for where, data in checkpoints:
            try:
                checkpoint = read_checkpoint(data, store.keys)
            except CheckpointError as exc:
                lines.append(f"INVALID: checkpoint {where}: {exc}")
                continue
            lines += [p.line() for p in check_checkpoint(rows, checkpoint)]
    if lines:
        print("\n".join(lines))
        return 1
    held = f"; {len(checkpoints)} checkpoint(s) hold" if checkpoints else ""
    print(report_lines(report)[0] + held)
    return 0


def cmd_audit_checkpoint(args: argparse.Namespace) -> int:
    """Sign (event count, head hash) with the configured key into a file kept outside the database."""
    from datetime import UTC, datetime

    from stella_operators.evidence.locker_sync import checkpoint_to_locker
    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger.audit_checkpoint import make_checkpoint

    if not args.output and not args.to_locker:
        print("stella: say where the checkpoint goes: -o FILE and/or --to-locker", file=sys.stderr)
        return 2
    key = SigningKeyHook().get_conn()
    if args.to_locker:
        locker = open_locker(args)
        index, events, head = checkpoint_to_locker(open_ledger(args), key, locker)
        print(f"wrote checkpoint/{index.subject} to {locker.where}: {events} events, head {head}, "
              f"signed by {key.key_id}")
        if not args.output:
            return 0
    out = Path(args.output)
    if out.exists():
        print(f"stella: {out} exists; checkpoints are records, never overwritten", file=sys.stderr)
        return 2
    rows = open_ledger(args).audit_events()
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
    av.add_argument("--no-locker", dest="use_locker", action="store_false",
                    help="do not check the evidence locker's newest checkpoint (checked by default when it has one)")
    av.add_argument("--locker", default=None, metavar="URL", help="the evidence locker (default $STELLA_LOCKER_URL)")
    av.set_defaults(func=cmd_audit_verify, public_key=None, trust_ledger_keys=False)
    ac = au.add_parser("checkpoint", help="sign the chain's event count and head hash into FILE and/or the "
                                          "evidence locker (keep it outside the database)")
    ac.add_argument("-o", "--output", metavar="FILE")
    ac.add_argument("--to-locker", action="store_true", help="write it to the evidence locker (and note it in "
                                                             "the audit log)")
    ac.add_argument("--locker", default=None, metavar="URL", help="the evidence locker (default $STELLA_LOCKER_URL)")
    ac.set_defaults(func=cmd_audit_checkpoint)

