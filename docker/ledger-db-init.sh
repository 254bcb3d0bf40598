#!/bin/bash
# First start of ledger-db (postgres image's /docker-entrypoint-initdb.d): create the application role.
# It owns nothing; airflow-init's `stella ledger migrate --app-role` grants it exactly what the product
# needs after each migration (stella_operators/ledger/roles.py).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v app_user="$LEDGER_APP_USER" -v app_password="$LEDGER_APP_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password' NOSUPERUSER NOCREATEDB NOCREATEROLE;
SQL
