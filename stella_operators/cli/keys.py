"""`stella keys list | rotate | revoke`: the evidence signing key's life cycle in a trust directory.

rotate  a new Ed25519 key (new key id) replaces the private key file; its public key joins the
        trust directory first; the retired key's public key stays there, so what it signed keeps
        verifying. The old private key is overwritten: a retired key signs nothing any more.
revoke  adds {key_id, revoked_at, reason} to the directory's revocations.json: what that key
        signed at or after revoked_at fails verification, naming the revocation.
stdout carries only the answer (key ids, or the list); notes go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path


def _trust_dir(args: argparse.Namespace) -> Path:
    from stella_operators.evidence.trust import TRUST_DIR_ENV

    raw = args.trust or os.environ.get(TRUST_DIR_ENV, "").strip()
    if not raw:
        raise SystemExit(_usage(f"name the trust directory: --trust DIR or {TRUST_DIR_ENV}"))
    path = Path(raw)
    if not path.is_dir():
        raise SystemExit(_usage(f"trust directory {path} does not exist (or is not a directory)"))
    return path


def _usage(message: str) -> int:
    print(f"stella: {message}", file=sys.stderr)
    return 2


def _signing_key_file(args: argparse.Namespace) -> Path:
    """The private key file rotate replaces: --key-file, else the signing Connection's extra
    key_file, else the development key; a key held in a Connection's password cannot be rotated here."""
    from stella_operators import settings
    from stella_operators.hooks.connections import connection_or_none

    if args.key_file:
        return Path(args.key_file)
    conn_id = settings.signing_key_conn_id()
    conn = connection_or_none(conn_id)
    if conn is None:
        return settings.dev_key_path()
    key_file = conn.extra_dejson.get("key_file")
    if not key_file:
        raise SystemExit(_usage(
            f"the signing key lives in connection {conn_id!r}'s password: create a new one with "
            "`stella evidence keygen`, put its public key in the trust directory, then update the connection "
            "(or pass --key-file)"))
    return Path(key_file)


def _current_key_id() -> str | None:
    """The configured signing key's id, without creating a development key."""
    from stella_operators import settings
    from stella_operators.hooks.connections import connection_or_none
    from stella_operators.hooks.signing import SigningKeyHook

    if connection_or_none(settings.signing_key_conn_id()) is None and not settings.dev_key_path().exists():
        return None
    try:
        return SigningKeyHook()._load().key_id
    except (OSError, ValueError):
        return None


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_keys_list(args: argparse.Namespace) -> int:
    from stella_operators.evidence.trust import load_trust_store

    trust = _trust_dir(args)
    store = load_trust_store([trust], source=str(trust))
    current = _current_key_id()
    rows = []
    for key_id in store.keys.key_ids():
        rev = store.keys.revocation(key_id)
        rows.append({"key_id": key_id, "status": "revoked" if rev else "trusted",
                     "revoked_at": rev.revoked_at.isoformat() if rev else None,
                     "reason": rev.reason if rev else None, "signing": key_id == current,
                     "file": store.origins.get(key_id)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        status = f"revoked since {r['revoked_at']} ({r['reason']})" if r["revoked_at"] else "trusted"
        print(f"{r['key_id']}\t{status}{chr(9) + 'signing' if r['signing'] else ''}")
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from stella_operators.evidence.keys import SigningKey
    from stella_operators.evidence.trust import load_trust_store

    trust = _trust_dir(args)
    key_file = _signing_key_file(args)
    old = SigningKey.from_pem(key_file.read_bytes()) if key_file.exists() else None
    new = SigningKey.generate()
    # Public key first: evidence the new key signs must verify from the moment it exists.
    _write_atomic(trust / f"{new.key_id.split(':', 1)[1]}.pub", new.public_pem(), 0o644)
    _write_atomic(key_file, new.to_pem(), 0o600)
    if old is not None:
        store = load_trust_store([trust], source=str(trust))
        if old.key_id in store:
            print(f"retired {old.key_id}: its public key stays in {trust}, what it signed keeps verifying",
                  file=sys.stderr)
        else:
            print(f"retired {old.key_id}: it was not in {trust}, so what it signed did not and does not verify",
                  file=sys.stderr)
    print(new.key_id)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from stella_operators.evidence.trust import REVOCATIONS_FILE, load_trust_store, read_revocations

    trust = _trust_dir(args)
    if not args.reason.strip():
        return _usage("say why the key is revoked: --reason TEXT (white space alone is refused)")
    try:
        at = datetime.fromisoformat(args.at.replace("Z", "+00:00")) if args.at else datetime.now(UTC)
    except ValueError:
        return _usage(f"--at {args.at!r} is not an ISO 8601 time, e.g. 2026-11-30T12:00:00Z")
    if at.tzinfo is None:
        return _usage(f"--at {args.at!r} has no time zone; add Z or +HH:MM")
    store = load_trust_store([trust], source=str(trust))
    if args.key_id not in store:
        return _usage(f"{args.key_id} is not in {trust} (keys there: {', '.join(store.keys.key_ids())})")
    entries = [{"key_id": r.key_id, "revoked_at": r.revoked_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "reason": r.reason} for r in read_revocations(trust)]
    entries.append({"key_id": args.key_id, "revoked_at": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    "reason": args.reason.strip()})
    _write_atomic(trust / REVOCATIONS_FILE, (json.dumps(entries, indent=2) + "\n").encode(), 0o644)
    effective = load_trust_store([trust], source=str(trust)).keys.revocation(args.key_id)
    assert effective is not None
    if effective.revoked_at < at:
        print(f"note: {args.key_id} was already revoked at {effective.revoked_at.isoformat()}; the earliest "
              "revocation counts", file=sys.stderr)
    if args.key_id == _current_key_id():
        print(f"warning: {args.key_id} is the configured signing key: evidence it signs from now on will not "
              "verify; run `stella keys rotate` now", file=sys.stderr)
    print(args.key_id)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    k = sub.add_parser("keys", help="evidence signing keys: list, rotate, revoke (in a trust directory)")
    ks = k.add_subparsers(dest="keys_cmd", required=True)
    trust_help = "the trust directory (default $STELLA_TRUST_DIR)"
    ls = ks.add_parser("list", help="keys in the trust directory: trusted or revoked, and which one signs")
    ls.add_argument("--trust", metavar="DIR", help=trust_help)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_keys_list)
    ro = ks.add_parser("rotate", help="replace the signing key with a new one; the old one's public key stays trusted")
    ro.add_argument("--trust", metavar="DIR", help=trust_help)
    ro.add_argument("--key-file", help="private key file to replace (default: the signing Connection's key_file, "
                                       "else the development key)")
    ro.set_defaults(func=cmd_keys_rotate)
    rv = ks.add_parser("revoke", help="revoke a key from a time on: what it signed from then on fails verification")
    rv.add_argument("key_id")
    rv.add_argument("--reason", required=True)
    rv.add_argument("--at", help="revocation time, ISO 8601 with a time zone (default: now); may be in the past")
    rv.add_argument("--trust", metavar="DIR", help=trust_help)
    rv.set_defaults(func=cmd_keys_revoke)
