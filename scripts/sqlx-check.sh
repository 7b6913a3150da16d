#!/usr/bin/env bash
# The compile-checked SQL's offline data (.sqlx/) against the migrations: `--check` fails when
# a query or the schema changed without `just sqlx-prepare`; without it, writes the data anew.
# Uses its own database, migrated from migrations/ by sqlx-cli (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

admin_url="${BOOKING_ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
database="booking_sqlx"
base="${admin_url%/*}"
host_part="${base#*@}"

if ! cargo sqlx --version >/dev/null 2>&1; then
  echo "[sqlx] installing sqlx-cli"
  cargo install --locked sqlx-cli --version 0.8.6 --no-default-features --features postgres,rustls
fi

# A fresh database each time: the data must match the migrations as they are now.
psql "$admin_url" -qc "drop database if exists $database with (force)" >/dev/null
psql "$admin_url" -qc "do \$\$ begin
  if not exists (select from pg_roles where rolname = 'booking_owner') then
    create role booking_owner login createdb createrole password 'booking_owner';
  end if; end \$\$" >/dev/null
psql "$admin_url" -qc "create database $database owner booking_owner" >/dev/null
cargo sqlx migrate run --source migrations \
  --database-url "postgres://booking_owner:booking_owner@$host_part/$database" >/dev/null

export DATABASE_URL="$base/$database"
unset SQLX_OFFLINE
cargo sqlx prepare --workspace "$@"
