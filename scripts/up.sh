#!/usr/bin/env bash
# Runs the platform in the foreground: the four services, the fake WhatsApp Cloud API and the
# fake Stripe, then seeds the demo tenant (with 90 days of past bookings on its first run) and
# writes .data/demo.env. Ctrl-C (or any one of them exiting) stops all. Ports:
# COMMAND_API_PORT (8080), QUERY_API_PORT (8081), FAKE_WHATSAPP_PORT (8090), PROJECTOR_PORT
# (8082), ANALYTICS_PORT (8084), DASHBOARD_PORT (8088), FAKE_STRIPE_PORT (12111),
# SMTP_SINK_PORT (2525) and SMTP_SINK_HTTP_PORT (8025).
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${CARGO_TARGET_DIR:-target}/debug"
command_port="${COMMAND_API_PORT:-8080}"
query_port="${QUERY_API_PORT:-8081}"
fake_port="${FAKE_WHATSAPP_PORT:-8090}"
projector_port="${PROJECTOR_PORT:-8082}"
analytics_port="${ANALYTICS_PORT:-8084}"
dashboard_port="${DASHBOARD_PORT:-8088}"
fake_url="http://127.0.0.1:$fake_port"
stripe_port="${FAKE_STRIPE_PORT:-12111}"
stripe_url="http://127.0.0.1:$stripe_port/"
stripe_secret="${STRIPE_WEBHOOK_SECRET:-whsec_demo_development_only}"
smtp_port="${SMTP_SINK_PORT:-2525}"
mail_port="${SMTP_SINK_HTTP_PORT:-8025}"
mail_url="http://127.0.0.1:$mail_port/messages"
mkdir -p .data/logs
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

export APP__LOG__FILTER="${APP__LOG__FILTER:-info,sqlx=warn}"
# Each service connects to NATS as its own user (nats/auth.conf), with the local server's
# development passwords (nats/dev.env).
nats_url="${APP__NATS__URL:-nats://127.0.0.1:4223}"
export APP__NATS__URL="$nats_url"
. nats/dev.env
. scripts/lib.sh
FAKE_WHATSAPP_ADDR="127.0.0.1:$fake_port" "$bin/fake-whatsapp" >.data/logs/fake-whatsapp.log 2>&1 & pids+=($!)
SMTP_SINK_SMTP_ADDR="127.0.0.1:$smtp_port" SMTP_SINK_HTTP_ADDR="127.0.0.1:$mail_port" \
  "$bin/smtp-sink" >.data/logs/smtp-sink.log 2>&1 & pids+=($!)
FAKE_STRIPE_ADDR="127.0.0.1:$stripe_port" \
  FAKE_STRIPE_WEBHOOK_URL="http://127.0.0.1:$command_port/webhooks/stripe" \
  STRIPE_WEBHOOK_SECRET="$stripe_secret" FAKE_STRIPE_STATE_FILE=.data/fake-stripe.json \
  "$bin/fake-stripe" >.data/logs/fake-stripe.log 2>&1 & pids+=($!)
APP__HTTP__PORT="$command_port" APP__WHATSAPP__API_BASE_URL="$fake_url" \
  APP__STRIPE__API_BASE_URL="$stripe_url" APP__STRIPE__WEBHOOK_SECRETS="$stripe_secret" \
  APP__WEBHOOKS__ALLOW_HTTP=true APP__LIMITS__TRUSTED_PROXIES="127.0.0.1,::1" \
  env $(as_nats command-api) "$bin/command-api" >.data/logs/command-api.log 2>&1 & pids+=($!)
APP__HTTP__PORT="$query_port" env $(as_nats query-api) "$bin/query-api" >.data/logs/query-api.log 2>&1 & pids+=($!)
APP__HTTP__PORT="$projector_port" APP__SENDER__API_BASE_URL="$fake_url" \
  APP__STRIPE__API_BASE_URL="$stripe_url" APP__NOTIFIER__SMTP_URL="smtp://127.0.0.1:$smtp_port" \
  APP__RELAY__NATS_USER=relay APP__RELAY__NATS_PASSWORD="$BOOKING_NATS_RELAY_PASSWORD" \
  APP__WEBHOOKS__ALLOW_PRIVATE_NETWORKS=true \
  env $(as_nats projector) "$bin/projector" >.data/logs/projector.log 2>&1 & pids+=($!)
APP__HTTP__PORT="$analytics_port" env $(as_nats analytics) "$bin/analytics" >.data/logs/analytics.log 2>&1 & pids+=($!)
APP__HTTP__PORT="$dashboard_port" APP__APIS__COMMAND_URL="http://127.0.0.1:$command_port" \
  APP__APIS__QUERY_URL="http://127.0.0.1:$query_port" \
  "$bin/dashboard" >.data/logs/dashboard.log 2>&1 & pids+=($!)

wait_ready "$command_port" "$query_port" "$projector_port" "$analytics_port" "$dashboard_port"
wait_url "$fake_url/_fake/messages"

"$bin/bookingctl" demo \
  --command-api "http://127.0.0.1:$command_port" \
  --query-api "http://127.0.0.1:$query_port" \
  --fake-whatsapp "$fake_url" \
  --fake-stripe "$stripe_url" \
  --stripe-webhook-secret "$stripe_secret" \
  --smtp-sink "$mail_url" \
  --env-file .data/demo.env
# Where the platform's NATS is (no credentials: each service has its own, see nats/auth.conf).
echo "NATS_URL=$nats_url" >>.data/demo.env
echo "DASHBOARD_URL=http://127.0.0.1:$dashboard_port" >>.data/demo.env
demo() { grep "^$1=" .data/demo.env | cut -d= -f2-; }

cat <<MSG
  dashboard      http://127.0.0.1:$dashboard_port   (sign in: business demo-salon,
                 $(demo DEMO_OWNER_EMAIL), password $(demo DEMO_OWNER_PASSWORD))
  command-api    http://127.0.0.1:$command_port
  query-api      http://127.0.0.1:$query_port
  fake WhatsApp  $fake_url   (GET /_fake/messages?to=PHONE)
  fake Stripe    $stripe_url   (open DEMO_CHECKOUT_URL to subscribe; GET /_fake/events)
  SMTP sink      smtp://127.0.0.1:$smtp_port   (the emails sent: $mail_url)
  projector      http://127.0.0.1:$projector_port   (relay, read models, WhatsApp sender)
  analytics      http://127.0.0.1:$analytics_port   (the analytics consumer; read them at
                 query-api /v1/analytics/overview, /series, /busiest-hours)
  logs           .data/logs/

  In another terminal:  just chat        Ctrl-C here stops everything.
MSG
wait -n
