#!/usr/bin/env bash
# Runs the three services in the foreground; Ctrl-C (or any one of them exiting) stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug"
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

APP__HTTP__PORT="${COMMAND_API_PORT:-8080}" "$bin/command-api" & pids+=($!)
APP__HTTP__PORT="${QUERY_API_PORT:-8081}" "$bin/query-api" & pids+=($!)
APP__HTTP__PORT="${PROJECTOR_PORT:-8082}" "$bin/projector" & pids+=($!)

for port in "${COMMAND_API_PORT:-8080}" "${QUERY_API_PORT:-8081}" "${PROJECTOR_PORT:-8082}"; do
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done
cat <<MSG

  command-api  http://127.0.0.1:${COMMAND_API_PORT:-8080}   (/healthz, /readyz)
  query-api    http://127.0.0.1:${QUERY_API_PORT:-8081}
  projector    http://127.0.0.1:${PROJECTOR_PORT:-8082}   (relays the event store to NATS)

  Ctrl-C stops everything.
MSG
wait -n
