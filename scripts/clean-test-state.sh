#!/usr/bin/env bash
# Drops databases that earlier test runs left behind (a test drops its own when it ends; a
# killed run may not have), and the template, so this run migrates a fresh one.
set -euo pipefail
admin_url="${BOOKING_TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql "$admin_url" -XAtq -c \
  "select datname from pg_database where datname like 'booking\_test\_%' or datname like 'booking\_template\_%'" |
  while read -r db; do
    [ -n "$db" ] && psql "$admin_url" -Xq -c "drop database if exists \"$db\" with (force)"
  done
