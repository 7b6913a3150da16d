#!/usr/bin/env bash
# The multi-node topology on one machine, as processes (no containers): what `just up-cluster`
# runs in the foreground. Ctrl-C (or any one process exiting) stops all of it.
#
#   NATS        3-node JetStream cluster, nats/cluster/n{1,2,3}.conf, clients on 4301-4303;
#               the events stream has 3 replicas (it survives one node down)
#   Postgres    a primary on 5441 and a streaming-replication hot standby on 5442 made with
#               pg_basebackup (Debian's server binaries; data in .data/cluster/)
#   Redis       the machine's, on 6379 (scripts/services.sh)
#   HAProxy     deploy/haproxy.cfg: command API on 8080, query API on 8081, stats on 8404
#   services    command-api x2 (8180, 8181), query-api x2 (8190, 8191, reading from the
#               standby where a read allows it), projector x2 (8182, 8183: one relay leader
#               elected through Postgres, the consumers shared), analytics (8084), the
#               dashboard (8088), the fake Cloud API (8090), the fake Stripe (12111) and the
#               SMTP sink (2525, 8025)
#
# The first run creates both Postgres clusters and seeds the demo tenant; later runs start
# what is there. `rm -rf .data/cluster .data/nats-cluster` forgets it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug"
root="$PWD/.data/cluster"
logs="$root/logs"
mkdir -p "$logs"

say() { printf '\033[1;34m[cluster]\033[0m %s\n' "$*"; }
pids=()
stop() {
  # A second Ctrl-C must not cut the shutdown short (Postgres is stopped last).
  trap '' INT TERM
  trap - EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
  for pg in primary standby; do
    [ -f "$root/pg-$pg/postmaster.pid" ] && as_postgres pg_ctl -D "$root/pg-$pg" -m fast -w stop >/dev/null 2>&1 || true
  done
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# --- Postgres: a primary and its hot standby -------------------------------------------------
pg_bin="${BOOKING_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
as_postgres() { # runs a server binary as the postgres user (Postgres refuses root)
  local program="$pg_bin/$1"; shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$program" "$@"; else "$program" "$@"; fi
}
pg_password="${BOOKING_CLUSTER_PG_PASSWORD:-postgres}"
primary_port=5441
standby_port=5442
if [ ! -d "$root/pg-primary" ]; then
  say "creating the Postgres primary (port $primary_port)"
  install -d -m 700 "$root/pg-primary"
  pwfile="$(mktemp)"; echo "$pg_password" >"$pwfile"
  if [ "$(id -u)" = 0 ]; then chown postgres "$root/pg-primary" "$pwfile"; fi
  # Passwords on TCP (scram), the superuser's from the file; replication allowed from loopback.
  as_postgres initdb -D "$root/pg-primary" -U postgres --pwfile="$pwfile" \
    --auth-local=peer --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
fi
as_postgres pg_ctl -D "$root/pg-primary" -l "$root/pg-primary/server.log" -w \
  -o "-p $primary_port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
admin_url="postgres://postgres:$pg_password@127.0.0.1:$primary_port/postgres"
"$bin/bookingctl" db-setup --admin-url "$admin_url" >"$logs/db-setup.log" 2>&1
if [ ! -d "$root/pg-standby" ]; then
  say "cloning the hot standby (port $standby_port) with pg_basebackup"
  install -d -m 700 "$root/pg-standby"
  if [ "$(id -u)" = 0 ]; then chown postgres "$root/pg-standby"; fi
  PGPASSWORD="$pg_password" as_postgres pg_basebackup -D "$root/pg-standby" \
    -d "host=127.0.0.1 port=$primary_port user=postgres password=$pg_password" \
    --wal-method=stream --checkpoint=fast --write-recovery-conf
fi
as_postgres pg_ctl -D "$root/pg-standby" -l "$root/pg-standby/server.log" -w \
  -o "-p $standby_port -k /tmp -c listen_addresses=127.0.0.1 -c max_connections=300" start >/dev/null
pg_url() { echo "postgres://$1:$1@127.0.0.1:$2/booking"; }
export APP__DATABASE__URL="$(pg_url booking_app $primary_port)"
export APP__DATABASE__OPERATOR_URL="$(pg_url booking_operator $primary_port)"

# --- NATS: three JetStream nodes ---------------------------------------------------------------
set -a; . nats/dev.env; set +a
for n in 1 2 3; do
  nats-server -c "nats/cluster/n$n.conf" >"$logs/nats-n$n.log" 2>&1 & pids+=($!)
done
export APP__NATS__URL="nats://127.0.0.1:4301,nats://127.0.0.1:4302,nats://127.0.0.1:4303"
# The stream with 3 replicas, once the nodes have elected their metadata leader.
for attempt in $(seq 1 30); do
  BOOKING_NATS_USER=operator BOOKING_NATS_PASSWORD="$BOOKING_NATS_OPERATOR_PASSWORD" \
    "$bin/bookingctl" nats-provision --url "$APP__NATS__URL" --replicas 3 \
    >"$logs/nats-provision.log" 2>&1 && break
  [ "$attempt" = 30 ] && { say "the NATS cluster did not form: $logs/nats-*.log"; exit 1; }
  sleep 1
done

# --- The services --------------------------------------------------------------------------------
export APP__LOG__FILTER="${APP__LOG__FILTER:-info,sqlx=warn}"
. scripts/lib.sh
fake_url="http://127.0.0.1:8090"
stripe_url="http://127.0.0.1:12111/"
stripe_secret="${STRIPE_WEBHOOK_SECRET:-whsec_demo_development_only}"
FAKE_WHATSAPP_ADDR="127.0.0.1:8090" "$bin/fake-whatsapp" >"$logs/fake-whatsapp.log" 2>&1 & pids+=($!)
SMTP_SINK_SMTP_ADDR="127.0.0.1:2525" SMTP_SINK_HTTP_ADDR="127.0.0.1:8025" \
  "$bin/smtp-sink" >"$logs/smtp-sink.log" 2>&1 & pids+=($!)
FAKE_STRIPE_ADDR="127.0.0.1:12111" FAKE_STRIPE_WEBHOOK_URL="http://127.0.0.1:8080/webhooks/stripe" \
  STRIPE_WEBHOOK_SECRET="$stripe_secret" FAKE_STRIPE_STATE_FILE="$root/fake-stripe.json" \
  "$bin/fake-stripe" >"$logs/fake-stripe.log" 2>&1 & pids+=($!)
for i in 1 2; do
  APP__HTTP__PORT="818$((i - 1))" APP__WHATSAPP__API_BASE_URL="$fake_url" \
    APP__STRIPE__API_BASE_URL="$stripe_url" APP__STRIPE__WEBHOOK_SECRETS="$stripe_secret" \
    APP__WEBHOOKS__ALLOW_HTTP=true APP__LIMITS__TRUSTED_PROXIES="127.0.0.1,::1" \
    env $(as_nats command-api) "$bin/command-api" >"$logs/command-api-$i.log" 2>&1 & pids+=($!)
  APP__HTTP__PORT="819$((i - 1))" APP__LIMITS__TRUSTED_PROXIES="127.0.0.1,::1" \
    APP__DATABASE__REPLICA_URL="$(pg_url booking_app $standby_port)" \
    env $(as_nats query-api) "$bin/query-api" >"$logs/query-api-$i.log" 2>&1 & pids+=($!)
  APP__HTTP__PORT="818$((i + 1))" APP__RELAY__REPLICAS=3 APP__SENDER__API_BASE_URL="$fake_url" \
    APP__STRIPE__API_BASE_URL="$stripe_url" APP__NOTIFIER__SMTP_URL="smtp://127.0.0.1:2525" \
    APP__RELAY__NATS_USER=relay APP__RELAY__NATS_PASSWORD="$BOOKING_NATS_RELAY_PASSWORD" \
    APP__WEBHOOKS__ALLOW_PRIVATE_NETWORKS=true \
    env $(as_nats projector) "$bin/projector" >"$logs/projector-$i.log" 2>&1 & pids+=($!)
done
APP__HTTP__PORT=8084 env $(as_nats analytics) "$bin/analytics" >"$logs/analytics.log" 2>&1 & pids+=($!)
COMMAND_BIND=127.0.0.1:8080 COMMAND_API_1=127.0.0.1:8180 COMMAND_API_2=127.0.0.1:8181 \
  QUERY_BIND=127.0.0.1:8081 QUERY_API_1=127.0.0.1:8190 QUERY_API_2=127.0.0.1:8191 \
  STATS_BIND=127.0.0.1:8404 haproxy -W -db -f deploy/haproxy.cfg >"$logs/haproxy.log" 2>&1 & pids+=($!)
APP__HTTP__PORT=8088 APP__APIS__COMMAND_URL="http://127.0.0.1:8080" \
  APP__APIS__QUERY_URL="http://127.0.0.1:8081" "$bin/dashboard" >"$logs/dashboard.log" 2>&1 & pids+=($!)

wait_ready 8180 8181 8190 8191 8182 8183 8084 8088 8080 8081
wait_url "$fake_url/_fake/messages"

if [ ! -f "$root/demo.env" ]; then
  say "seeding the demo tenant through HAProxy"
  "$bin/bookingctl" demo --command-api http://127.0.0.1:8080 --query-api http://127.0.0.1:8081 \
    --fake-whatsapp "$fake_url" --fake-stripe "$stripe_url" \
    --stripe-webhook-secret "$stripe_secret" --smtp-sink http://127.0.0.1:8025/messages \
    --env-file "$root/demo.env"
fi
leader="$(grep -l "relay is the leader" "$logs"/projector-*.log 2>/dev/null | head -1 || true)"
cat <<MSG
  HAProxy        command API http://127.0.0.1:8080, query API http://127.0.0.1:8081,
                 stats http://127.0.0.1:8404 (Prometheus at /metrics)
  instances      command-api :8180 :8181, query-api :8190 :8191, projector :8182 :8183
                 (relay leader: $(basename "${leader:-being elected}" .log))
  Postgres       primary :$primary_port, hot standby :$standby_port (superuser postgres/$pg_password)
  NATS           :4301 :4302 :4303 (monitoring :8301 :8302 :8303), stream replicas 3
  dashboard      http://127.0.0.1:8088   (demo sign-in: $root/demo.env)
  logs           $logs/

  Ctrl-C here stops everything.
MSG
wait -n
