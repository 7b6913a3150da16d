# Shell helpers shared by scripts/up.sh and deploy/up-cluster.sh (sourced, not run).

# as_nats USER: the environment that logs a service in to NATS as USER (nats/auth.conf), with
# the password from nats/dev.env (sourced by the caller).
as_nats() {
  local var="BOOKING_NATS_$(tr 'a-z-' 'A-Z_' <<<"$1")_PASSWORD"
  printf '%s\n' "APP__NATS__USER=$1" "APP__NATS__PASSWORD=${!var}"
}

# wait_ready PORT...: waits (up to 20 s each) for the services on these loopback ports to
# answer /readyz.
wait_ready() {
  local port
  for port in "$@"; do
    for _ in $(seq 1 200); do
      curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
}

# wait_url URL: waits (up to 10 s) for URL to answer.
wait_url() {
  for _ in $(seq 1 100); do
    curl -fsS "$1" >/dev/null 2>&1 && break
    sleep 0.1
  done
}
