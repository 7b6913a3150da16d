#!/usr/bin/env bash
# Makes sure Postgres 15 and Redis 7 answer on their standard loopback ports, and the project's
# authenticated NATS (JetStream) on 4223.
# Uses running ones; otherwise starts the system's packaged service, or a project-local
# instance under .data/; installs the Debian packages first when the binaries are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="$PWD/.data"
mkdir -p "$DATA"

log() { printf '\033[1;34m[services]\033[0m %s\n' "$*"; }
port_open() { timeout 1 bash -c "</dev/tcp/127.0.0.1/$1" 2>/dev/null; }
wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  echo "nothing answers on port $1" >&2; return 1
}

APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if port_open 5432; then return; fi
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    log "installing postgresql"; apt_install postgresql postgresql-client
  fi
  if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q .; then
    local version cluster
    read -r version cluster _ < <(pg_lsclusters -h | head -1)
    log "starting the system Postgres cluster $version/$cluster"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start || true
    if wait_port 5432; then return; fi
  fi
  local bin; bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
  local dir="$DATA/postgres"
  if [ ! -s "$dir/PG_VERSION" ]; then
    log "initialising a project-local Postgres in $dir"
    mkdir -p "$dir"; chown postgres:postgres "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir" -U postgres --auth=trust >/dev/null
  fi
  log "starting the project-local Postgres"
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-p 5432 -c listen_addresses=127.0.0.1 -k /tmp" start >/dev/null
  wait_port 5432
}

# The suite runs six tests at once, each with its own services and their pools, and the
# end-to-end tests run the binaries as processes: Postgres's default of 100 connections runs
# out ("remaining connection slots are reserved"). Where the server allows fewer than the
# suite needs, raise it; load pg_stat_statements for the benchmarks (a restart of that server).
ensure_connections() {
  local want=300 have preload
  have=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'show max_connections' 2>/dev/null) || return 0
  preload=$(psql -h 127.0.0.1 -U postgres -d postgres -Atc 'show shared_preload_libraries')
  [ "$have" -ge "$want" ] && [[ "$preload" == *pg_stat_statements* ]] && return 0
  log "raising Postgres max_connections from $have to $want and loading pg_stat_statements (restarting it)"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "alter system set max_connections = $want"
  # The benchmarks' statement profiles (tests/src/statements.rs) read it.
  if [[ "$preload" != *pg_stat_statements* ]]; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc \
      "alter system set shared_preload_libraries = '${preload:+$preload,}pg_stat_statements'"
  fi
  if [ -s "$DATA/postgres/postmaster.pid" ]; then
    local bin; bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
    runuser -u postgres -- "$bin/pg_ctl" -D "$DATA/postgres" -w restart >/dev/null
  elif command -v pg_lsclusters >/dev/null; then
    local version cluster port
    while read -r version cluster port _; do
      if [ "$port" = 5432 ]; then
        pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" restart
      fi
    done < <(pg_lsclusters -h)
  fi
  wait_port 5432
  for _ in $(seq 1 50); do
    psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 && return 0
    sleep 0.2
  done
}

ensure_redis() {
  if port_open 6379; then return; fi
  command -v redis-server >/dev/null || { log "installing redis"; apt_install redis-server; }
  log "starting Redis"
  mkdir -p "$DATA/redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$DATA/redis" --logfile "$DATA/redis/redis.log"
  wait_port 6379
}

# The project's own nats-server (nats/single.conf: authentication on, port 4223), whatever the
# machine runs on 4222: the services and the tests connect to it with their own users. A running
# one re-reads its configuration (users and permissions may have changed since it started).
ensure_nats() {
  command -v nats-server >/dev/null || { log "installing nats-server"; apt_install nats-server; }
  set -a; . nats/dev.env; set +a
  if port_open 4223; then
    if [ -s "$DATA/nats/nats.pid" ]; then
      nats-server --signal "reload=$(cat "$DATA/nats/nats.pid")" 2>/dev/null || true
    fi
    return
  fi
  mkdir -p "$DATA/nats"
  local check; check=$(nats-server -t -c nats/single.conf 2>&1) || { echo "$check" >&2; return 1; }
  log "starting NATS with JetStream and authentication (nats/single.conf)"
  setsid nats-server -c nats/single.conf -l "$DATA/nats/nats.log" </dev/null >/dev/null 2>&1 &
  wait_port 4223
}

ensure_postgres
ensure_connections
ensure_redis
ensure_nats
log "Postgres :5432, NATS :4223 (authenticated), Redis :6379 are up"
