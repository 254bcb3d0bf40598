"""`stella evidence locker ls | get | verify | prune | hold`: the evidence locker (evidence/locker.py).

stdout carries only the answer (tab-separated lines, or JSON with --json; `get` the file's bytes);
errors go to stderr with what to do. Exit 0 ok, 1 the locker holds a changed or missing object,
2 usage or a locker that cannot be reached.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stella_operators.evidence.locker import EvidenceLocker

# The commands import the locker (and Airflow's SDK for ObjectStoragePath) when they run: at module
# level they would cost seconds at the start of every other `stella` command (as cli/evidence.py does).


def open_locker(args: argparse.Namespace) -> EvidenceLocker:
    from stella_operators.hooks.locker import EvidenceLockerHook

    return EvidenceLockerHook(args.locker, getattr(args, "locker_conn_id", None)).get_conn()


def _split(ref: str) -> tuple[str, str]:
    from stella_operators.evidence.locker import LockerError

    kind, sep, subject = ref.partition("/")
    if not sep or not kind or not subject:
        raise LockerError(f"{ref!r}: expected KIND/SUBJECT, e.g. promotion/prm-... (see `stella evidence locker ls`)")
    return kind, subject


def cmd_ls(args: argparse.Namespace) -> int:
    """No argument: one line per index (kind/subject, updated, files). KIND: its indexes.
    KIND/SUBJECT: its files (address, size, kind, name)."""
    locker = open_locker(args)
    if args.ref and "/" in args.ref:
        kind, subject = _split(args.ref)
        index = locker.index(kind, subject)
        if index is None:
            print(f"stella: no index {args.ref} in the locker at {locker.where} (list them: stella evidence locker ls)",
                  file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(index.to_dict(), indent=1, sort_keys=True))
        else:
            for e in index.entries:
                print(f"{e.address}\t{e.size}\t{e.kind}\t{e.name}")
        return 0
    indexes = locker.indexes(args.ref or None)
    if args.json:
        print(json.dumps([{"kind": i.kind, "subject": i.subject, "updated_at": i.updated_at, "files": len(i.entries),
                           "legal_hold": locker.is_held(i.kind, i.subject)} for i in indexes], indent=1))
    else:
        for i in indexes:
            hold = "\tlegal-hold" if locker.is_held(i.kind, i.subject) else ""
            print(f"{i.kind}/{i.subject}\t{i.updated_at}\t{len(i.entries)}{hold}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    """The bytes at ADDRESS (or KIND/SUBJECT:NAME), verified; to stdout or -o FILE."""
    from stella_operators.evidence.locker import ADDRESS_RE, LockerMissing, LockerTampered

    locker = open_locker(args)
    address = args.ref
    if not ADDRESS_RE.match(address):
        ref, sep, name = address.partition(":")
        kind, subject = _split(ref)
        index = locker.index(kind, subject)
        entry = next((e for e in index.entries if e.name == name), None) if index and sep else None
        if entry is None:
            print(f"stella: {args.ref!r} names no file: use an address (sha256:...) or KIND/SUBJECT:NAME as "
                  f"`stella evidence locker ls {ref}` lists them", file=sys.stderr)
            return 2
        address = entry.address
    try:
        data = locker.get(address)
    except (LockerTampered, LockerMissing) as exc:
        print(f"stella: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-hash every object; one line per changed or missing one (exit 1), else one ok line."""
    locker = open_locker(args)
    problems = locker.verify()
    if problems:
        print("\n".join(problems))
        return 1
    print(f"ok: {len(locker.addresses())} objects, {len(locker.indexes())} indexes in {locker.where}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """Apply the retention rules (STELLA_LOCKER_RETENTION); --dry-run only prints what would go."""
    locker = open_locker(args)
    plan = locker.prune(dry_run=args.dry_run)
    lines = plan.lines(dry_run=args.dry_run)
    print("\n".join(lines) if lines else "nothing to prune")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    """Put KIND/SUBJECT under legal hold (prune keeps it and its files), or --release the hold."""
    locker = open_locker(args)
    kind, subject = _split(args.ref)
    if args.release:
        released = locker.release_hold(kind, subject)
        print(f"released {args.ref}" if released else f"{args.ref} was not on hold")
        return 0
    if locker.index(kind, subject) is None:
        print(f"stella: no index {args.ref} in the locker at {locker.where}", file=sys.stderr)
        return 2
    locker.hold(kind, subject, by=getpass.getuser(), reason=args.reason or "")
    print(f"held {args.ref}")
    return 0


def run(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """LockerError -> one line on stderr with what to do, exit 2 (bad input or configuration)."""
    def wrapped(args: argparse.Namespace) -> int:
        from stella_operators.evidence.locker import LockerError

        try:
            return int(func(args))
        except LockerError as exc:
            print(f"stella: {exc}", file=sys.stderr)
            return 2
    return wrapped


def register(evidence_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lk = evidence_sub.add_parser(
        "locker", help="the evidence locker (content-addressed copies of records, stickers, lock files, "
                       "deploy logs and audit checkpoints)",
        description="Where: --locker URL, else $STELLA_LOCKER_URL, else file://$STELLA_HOME/locker; credentials "
                    "from the Airflow Connection --conn-id / $STELLA_LOCKER_CONN_ID.")
    sub = lk.add_subparsers(dest="locker_cmd", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--locker", default=None, metavar="URL", help="file:///PATH or s3://BUCKET/PREFIX")
        p.add_argument("--conn-id", dest="locker_conn_id", default=None,
                       help="Airflow Connection with the locker's credentials / endpoint")

    ls = sub.add_parser("ls", help="indexes (no argument or KIND), or the files of KIND/SUBJECT")
    ls.add_argument("ref", nargs="?", metavar="KIND[/SUBJECT]")
    ls.add_argument("--json", action="store_true")
    common(ls)
    ls.set_defaults(func=run(cmd_ls))
    get = sub.add_parser("get", help="a file's bytes, verified against its address")
    get.add_argument("ref", metavar="ADDRESS|KIND/SUBJECT:NAME")
    get.add_argument("-o", "--output", metavar="FILE")
    common(get)
    get.set_defaults(func=run(cmd_get))
    ver = sub.add_parser("verify", help="re-hash every object; name changed and missing ones (exit 1)")
    common(ver)
    ver.set_defaults(func=run(cmd_verify))
    pr = sub.add_parser("prune", help="delete what the retention rules let go (never legal holds, never the "
                                      "newest checkpoint, never a file a kept index lists)")
    pr.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    common(pr)
    pr.set_defaults(func=run(cmd_prune))
    hd = sub.add_parser("hold", help="put KIND/SUBJECT under legal hold (or --release it)")
    hd.add_argument("ref", metavar="KIND/SUBJECT")
    hd.add_argument("--reason", help="why (required to hold)")
    hd.add_argument("--release", action="store_true")
    common(hd)
    hd.set_defaults(func=run(cmd_hold))
