"""`stella evidence verify | public-key | keygen | export`: evidence checked against the trust store only."""

from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from stella_operators.cli import locker
from stella_operators.cli.common import open_ledger
from stella_operators.cli.locker import open_locker

if TYPE_CHECKING:
    from stella_operators.evidence.trust import TrustStore


def trust_store(args: argparse.Namespace) -> TrustStore:
    """The keys `evidence verify` trusts: --trust/--public-key paths, else the configured trust store,
    else (only when asked) the ledger's registered keys. Never the ledger's keys silently."""
    from stella_operators.evidence.trust import TrustStore, load_trust_store
    from stella_operators.hooks.trust import TrustStoreHook

    paths = [*(args.trust or []), *(args.public_key or [])]
    if paths:
        return load_trust_store(paths, source="--trust " + " ".join(map(str, paths)))
    if args.trust_ledger_keys:
        print("stella: WARNING: --trust-ledger-keys trusts every key registered in the ledger; any key that "
              "ever signed a stored record registered itself there, so a forged record signed with such a "
              "key verifies ok. Use it only to inspect a ledger, never as proof.", file=sys.stderr)
        return TrustStore(keys=open_ledger(args).registered_keys(), source="the ledger's registered keys (untrusted)")
    return TrustStoreHook().get_conn()


def cmd_evidence_verify(args) -> int:
    """Verify each ref (ledger id or exported file) against the trust store; 1 if any fails."""
    from stella_operators.evidence.envelope import verify_evidence
    from stella_operators.evidence.trust import TrustStoreError
    from stella_operators.ledger import NotFound

    try:
        store = trust_store(args)
    except TrustStoreError as exc:
        print(f"stella: cannot verify: {exc}", file=sys.stderr)
        return 2
    ledger = None
    bad = 0
    for ref in args.refs:
        if Path(ref).is_file() and tarfile.is_tarfile(ref):
            bad += _verify_bundle_file(ref, store)
            continue
        if Path(ref).exists():
            text = Path(ref).read_text()
        else:
            ledger = ledger or open_ledger(args)
            try:
                text = ledger.get_evidence(ref).to_file_json()
            except NotFound:
                print(f"MISSING: {ref}: no such evidence in the ledger")
                bad += 1
                continue
        result = verify_evidence(text, store.keys)
        if result.ok:
            print(f"ok: {ref} (key {result.key_id}, trusted by {store.source})")
        elif result.key_id is not None and result.key_id not in store:
            print(f"INVALID: {ref}: untrusted key {result.key_id}: not in the trust store ({store.source})")
            bad += 1
        else:
            print(f"INVALID: {ref}: {result.reason}")
            bad += 1
    return 1 if bad else 0


def _verify_bundle_file(path: str, store: TrustStore) -> int:
    """Print one line per record / problem of a promotion bundle; the number of problems."""
    from stella_operators.evidence.bundle import BundleError, verify_bundle

    try:
        report = verify_bundle(Path(path).read_bytes(), store.keys)
    except BundleError as exc:
        print(f"INVALID: {path}: {exc}")
        return 1
    for line in report.lines():
        print(line)
    verdict = "ok" if report.ok else "INVALID"
    print(f"{verdict}: bundle {path} (promotion {report.promotion_id}, {len(report.records)} records, "
          f"trusted by {store.source})")
    return 0 if report.ok else 1


def cmd_evidence_public_key(args) -> int:
    """The public half of the configured signing key, for a trust store."""
    from stella_operators.hooks.signing import SigningKeyHook

    key = SigningKeyHook().get_conn()
    text = key.public_pem().decode("ascii")
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output} ({key.key_id})")
    else:
        sys.stdout.write(text)
    return 0


def cmd_evidence_keygen(args) -> int:
    """A new Ed25519 signing key (mode 0600) and its public key (for the trust store)."""
    from stella_operators.evidence.keys import load_or_create_dev_key

    if Path(args.key).exists():
        print(f"stella: {args.key} exists; not overwriting a signing key", file=sys.stderr)
        return 2
    key = load_or_create_dev_key(args.key)
    Path(args.public).parent.mkdir(parents=True, exist_ok=True)
    Path(args.public).write_bytes(key.public_pem())
    print(f"signing key {args.key} ({key.key_id}); public key {args.public}")
    return 0


def cmd_evidence_export(args) -> int:
    """A promotion id: its bundle (tar, see evidence/bundle.py); an evidence id: that record's file."""
    import getpass

    from stella_operators.evidence.bundle import export_bundle
    from stella_operators.hooks.signing import SigningKeyHook
    from stella_operators.ledger import NotFound

    ledger = open_ledger(args)
    try:
        ledger.get_promotion(args.id)
    except NotFound:
        record = ledger.get_evidence(args.id)  # NotFound -> one-line error, exit 2
        Path(args.output).write_text(record.to_file_json())
        print(f"wrote {args.output}")
        return 0
    locker = None
    if args.use_locker:
        try:
            locker = open_locker(args)
            locker.indexes("promotion")  # reachable?
        except Exception as exc:  # noqa: BLE001 - the records alone still make a verifiable bundle
            print(f"stella: WARNING: the evidence locker cannot be read ({type(exc).__name__}: {exc}); the bundle "
                  "holds the records but no stickers, lock files or deploy logs", file=sys.stderr)
            locker = None
    data = export_bundle(ledger, SigningKeyHook().get_conn(), args.id, exported_by=getpass.getuser(), locker=locker)
    Path(args.output).write_bytes(data)
    print(f"wrote {args.output}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    e = sub.add_parser("evidence", help="evidence records").add_subparsers(dest="evidence_cmd", required=True)
    ev = e.add_parser("verify", help="verify evidence records (ledger ids, exported files or promotion bundles) "
                                     "against the trust store",
                      description="Trusts only the trust store: --trust PATH, else $STELLA_TRUST_DIR, else the "
                                  "Airflow Connection stella_trust (extra 'path' or 'public_keys').")
    ev.add_argument("refs", nargs="+", metavar="ID|FILE")
    ev.add_argument("--trust", action="append", metavar="PATH",
                    help="trusted PEM public keys: a directory of *.pub/*.pem files or one file (repeatable)")
    ev.add_argument("--public-key", action="append", metavar="PEM", help="a trusted public key file (= --trust)")
    ev.add_argument("--trust-ledger-keys", action="store_true",
                    help="trust the keys registered in the ledger (UNSAFE: any signing key registers itself)")
    ev.set_defaults(func=cmd_evidence_verify)
    pk = e.add_parser("public-key", help="print the configured signing key's public key (for a trust store)")
    pk.add_argument("-o", "--output")
    pk.set_defaults(func=cmd_evidence_public_key)
    kg = e.add_parser("keygen", help="create an Ed25519 signing key and its public key file")
    kg.add_argument("key", help="where the private key goes (created 0600; never overwritten)")
    kg.add_argument("--public", required=True, help="where its public key goes (put it in the trust store)")
    kg.set_defaults(func=cmd_evidence_keygen)
    ex = e.add_parser("export", help="a promotion's bundle (tar: every record, keys, signed manifest) or one record")
    ex.add_argument("id", help="promotion id (writes a bundle) or evidence id (writes that record)")
    ex.add_argument("-o", "--output", required=True)
    ex.add_argument("--no-locker", dest="use_locker", action="store_false",
                    help="leave out the stickers, lock files and deploy logs the evidence locker holds")
    ex.add_argument("--locker", default=None, metavar="URL", help="the evidence locker (default $STELLA_LOCKER_URL)")
    ex.set_defaults(func=cmd_evidence_export)
    locker.register(e)

