#!/usr/bin/env bash
# Drops databases that earlier test runs left behind (a test drops its own when it ends; a
# killed run may not have), and old templates, so this run migrates a fresh one. Without FORCE:
# a database still in use (another run in progress on this cluster) is left alone.
set -uo pipefail
admin_url="${BOOKING_TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
psql "$admin_url" -XAtq -c \
  "select datname from pg_database where datname like 'booking\_test\_%' or datname like 'booking\_template\_%'" |
  while read -r db; do
    [ -n "$db" ] && psql "$admin_url" -Xq -c "drop database if exists \"$db\"" 2>/dev/null
  done
exit 0
