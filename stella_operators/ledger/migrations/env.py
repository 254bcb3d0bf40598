"""Alembic environment for the ledger. Run through `stella_operators.ledger.migrate`, not the alembic CLI.

The caller hands over an open connection (config.attributes["connection"]) inside a transaction
that already holds the migration lock, so two processes migrating at once take turns.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from stella_operators.ledger.tables import metadata

VERSION_TABLE = "stella_ledger_version"  # not `alembic_version`: the ledger may share a database


def _configure_and_run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("the ledger migrations need sqlalchemy.url or an open connection")
    engine = create_engine(url)
    with engine.connect() as connection:
        _configure_and_run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the ledger migrations run online only")
run_migrations_online()
