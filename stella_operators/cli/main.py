"""`stella`: validate estates, cut releases, approve, explain and replay decisions, verify evidence.

Exit codes: 0 ok, 1 the thing checked is bad (invalid estate, evidence that does not verify,
a refused release), 2 usage or environment errors. Errors are one line each, never a traceback.
The commands live by concept: estate_commands.py, releases.py, promotions.py, evidence.py, audit.py.
"""

from __future__ import annotations

import argparse
import os
import sys

from stella_operators.cli import (
    audit,
    estate_commands,
    evidence,
    keys,
    ledger_commands,
    promote,
    promotions,
    releases,
)
from stella_operators.estate.errors import EstateError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stella", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--ledger-conn-id", default=None, help="Airflow Connection of the ledger")
    sub = p.add_subparsers(dest="command", required=True)
    for commands in (estate_commands, releases, promote, promotions, evidence, keys, audit, ledger_commands):
        commands.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EstateError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except SystemExit:
        raise
    except Exception as exc:  # one line, never a traceback (set STELLA_DEBUG=1 to see it)
        if os.environ.get("STELLA_DEBUG"):
            raise
        from stella_operators.ledger import LedgerError
        from stella_operators.registry.client import RegistryError
        from stella_operators.release.service import ReleaseRefused

        refused = isinstance(exc, (ReleaseRefused, RegistryError, LedgerError))
        print(f"stella: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1 if refused else 2


if __name__ == "__main__":
    sys.exit(main())
