# Every developer command. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Static SQL is compile-checked against the committed offline data (.sqlx/), so building needs
# no database; `just sqlx-prepare` writes it anew after a query or a migration changed.
export SQLX_OFFLINE := "true"

admin_url := env("BOOKING_ADMIN_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")

default:
    @just --list

# Make sure Postgres, NATS (JetStream) and Redis run, starting local ones under .data/ if not
services:
    scripts/services.sh

# Create the roles and the database, run the migrations, provision the JetStream stream
setup: services
    cargo run -q -p bookingctl -- db-setup --admin-url '{{admin_url}}'
    just _as-nats-operator cargo run -q -p bookingctl -- nats-provision

# Runs a command as the NATS operator of the local server (nats/dev.env's development password)
_as-nats-operator +COMMAND:
    set -a; . nats/dev.env; set +a; \
    BOOKING_NATS_USER=operator BOOKING_NATS_PASSWORD="$BOOKING_NATS_OPERATOR_PASSWORD" {{COMMAND}}

# Run the platform with a demo tenant on local services (Ctrl-C stops it); writes .data/demo.env
up: setup
    cargo build -q -p command-api -p query-api -p projector -p analytics -p dashboard -p fake-whatsapp -p fake-stripe -p smtp-sink -p bookingctl
    scripts/up.sh

# Run the multi-node topology as processes (deploy/up-cluster.sh): a 3-node NATS cluster,
# Postgres primary and hot standby, HAProxy before two command APIs and two query APIs, two
# projectors (one relay leader), analytics, the dashboard and the fakes; Ctrl-C stops it
up-cluster: services
    cargo build -q -p command-api -p query-api -p projector -p analytics -p dashboard -p fake-whatsapp -p fake-stripe -p smtp-sink -p bookingctl
    deploy/up-cluster.sh

# Forget the local demo's state (database, event stream, cached keys) and run it afresh
reset: services
    cargo run -q -p bookingctl -- db-setup --fresh --admin-url '{{admin_url}}'
    just _as-nats-operator cargo run -q -p bookingctl -- nats-provision --fresh
    if command -v redis-cli >/dev/null; then \
        redis-cli --scan --pattern 'booking:*' | xargs -r redis-cli del >/dev/null; \
    fi
    rm -f .data/demo.env .data/fake-stripe.json
    just up

# Chat with the demo tenant's WhatsApp bot as a customer (after `just up`)
chat PHONE="+34600000000":
    cargo run -q -p bookingctl -- chat '{{PHONE}}'


# Run every test against the real services
test: services
    scripts/clean-test-state.sh
    scripts/schemathesis.sh
    cargo build -q --workspace --bins
    # RUST_LOG=error: a failing test shows what the services logged (the cause of a 500).
    # The cluster failover test after the rest, alone: its ten processes and three NATS nodes
    # would starve the other tests' deadlines on two cores.
    export RUST_LOG="${RUST_LOG:-error}"; status=0; \
    if cargo nextest --version >/dev/null 2>&1; then \
        cargo nextest run --workspace --no-fail-fast --test-threads 6 -E 'not test(/the_cluster_survives/)' || status=1; \
        cargo nextest run -p e2e-tests --no-fail-fast -E 'test(/the_cluster_survives/)' || status=1; \
    else \
        cargo test --workspace --no-fail-fast -- --skip the_cluster_survives || status=1; \
        cargo test -p e2e-tests --test e2e the_cluster_survives || status=1; \
    fi; \
    exit $status

# Only the failover test on the cluster topology (two command APIs behind HAProxy, two
# projectors, a 3-node NATS cluster), which `just test` runs last; SOAK_SECONDS=N for longer
test-cluster: services
    cargo build -q --workspace --bins
    RUST_LOG="${RUST_LOG:-error}" cargo nextest run -p e2e-tests --no-fail-fast -E 'test(/the_cluster_survives/)'

# Validate the committed AsyncAPI documents with the official parser (node, from the npm registry)
asyncapi-check:
    scripts/asyncapi-check.sh

# Formatting and lints, as CI checks them
lint:
    cargo fmt --all -- --check
    cargo clippy -q --workspace --all-targets -- -D warnings

# Write the compile-checked SQL's offline data (.sqlx/) anew, from a database migrated afresh
sqlx-prepare: services
    scripts/sqlx-check.sh

# Fail when .sqlx/ is stale: a query or a migration changed without `just sqlx-prepare`
sqlx-check: services
    scripts/sqlx-check.sh --check

# Event store benchmark: appends vs plain INSERT, gap-free reads, relay throughput
bench-eventstore: services
    cargo bench -q -p eventstore --bench eventstore

# Command API benchmark: signed webhooks from 1,000 tenants, beside a plain INSERT baseline
bench-commands: services
    cargo bench -q -p e2e-tests --bench commands

# Dashboard benchmark: each page's latency (p50, p99) and CPU time per page with 50 members at
# once, beside the query API's read of the day's bookings at the same concurrency
bench-dashboard *ARGS: services
    cargo bench -q -p e2e-tests --bench dashboard -- {{ARGS}}

# Read side benchmark: projection throughput and lag, query API latency, rebuild over 1M events;
# the backlog's Postgres statements per event (pg_stat_statements)
bench-read: services
    cargo bench -q -p e2e-tests --bench read

# Billing benchmark: meter events/s from a backlog of 100,000 messages beside the fake Stripe's
# ceiling, and Stripe webhook latency at 200 events/s
bench-billing: services
    cargo bench -q -p e2e-tests --bench billing

# Analytics benchmark: the analytics consumer beside the projections on one backlog, and the
# analytics reads over 1,000 tenants with a year of facts beside a plain read
bench-analytics *ARGS: services
    cargo bench -q -p e2e-tests --bench analytics -- {{ARGS}}

# The property harnesses at the boundaries, longer than the suite runs them: Meta's and
# Stripe's webhook bodies and signatures, every checked value, webhook URLs, and whole bot
# conversations typed, tapped, forged and late. CASES inputs per property.
fuzz CASES="100000":
    PROPTEST_CASES={{CASES}} cargo test -q -p domain -p whatsapp -p billing -- fuzz fixed_point money_is any_conversation documented_pattern nothing_unsigned a_signed_event

# The kill -9 soaks (tests/tests/e2e/soak.rs) for SECONDS on release binaries: mixed load while
# services are SIGKILLed every few seconds, NATS and Redis killed once, Postgres cut off
# for a few seconds; then the same on the cluster topology, losing a NATS node, the relay
# leader and a command API. `just test` runs them for 45 and 40 s.
soak SECONDS="600": services
    cargo build -q --release --bins
    cargo build -q -p e2e-tests --tests
    SOAK_SECONDS={{SECONDS}} BOOKING_BIN_DIR="${CARGO_TARGET_DIR:-target}/release" RUST_LOG=error \
        cargo nextest run -p e2e-tests --profile soak --no-capture -E 'test(/^soak::/)'

# End-to-end benchmark: webhook-to-reply latency over the release binaries, conversations/s,
# CPU per message by process and Postgres statements per message (--tenants, --concurrency,
# --seconds; --traces exports every service's spans to a local OTLP collector)
bench-e2e *ARGS: services
    cargo build -q --release --bins
    cargo bench -q -p e2e-tests --bench e2e -- {{ARGS}}

# A heap profile (heaptrack) of the command API under bench-e2e's load (same ARGS): the live
# heap over the run and its largest holders at the peak; the data stays in .data/heap/
profile-heap *ARGS: services
    scripts/profile-heap.sh {{ARGS}}
