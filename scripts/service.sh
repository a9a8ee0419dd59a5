# Sourced by the scripts that drive the order service over HTTP (schemathesis.sh,
# readme-session.sh): starting it on a free port, and stopping it.
#
#   start_service LOG ARGS...   runs target/debug/order-service ARGS... serve on 127.0.0.1:0,
#                               its output in LOG; sets service_pid and service_url
#                               (http://127.0.0.1:PORT), or prints LOG and exits 1
#   stop_service                stops it (SIGTERM, then waits)

service_pid=""
service_url=""

start_service() {
  local log=$1
  shift
  "$PWD/target/debug/order-service" "$@" serve --addr 127.0.0.1:0 >"$log" 2>&1 &
  service_pid=$!
  service_url=""
  for _ in $(seq 1 200); do
    service_url=$(grep -o 'listening on http://[0-9.:]*' "$log" | head -n 1 | sed 's/listening on //' || true)
    [ -n "$service_url" ] && return 0
    kill -0 "$service_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "$(basename "$0"): the service did not start; its log:" >&2
  cat "$log" >&2
  exit 1
}

stop_service() {
  # A server stopped by its signal may exit non-zero; that must not end the caller (set -e).
  if [ -n "$service_pid" ]; then
    kill "$service_pid" 2>/dev/null || true
    wait "$service_pid" 2>/dev/null || true
  fi
  service_pid=""
}
