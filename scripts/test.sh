#!/usr/bin/env bash
# The whole test suite: every crate's unit, integration and doc tests, the trybuild UI cases,
# the conformance suite on every store and the property tests. Extra arguments go to
# `cargo test`.
#
# The PostgreSQL tests use the server at DATABASE_URL (default: postgres://postgres@127.0.0.1:5432/test),
# each in fresh schemas that it drops. When nothing answers there and PostgreSQL's initdb is
# installed, a throwaway cluster is started in a temporary folder and stopped afterwards.
#
# The es-nats tests use the NATS server (with JetStream) at NATS_URL (default: 127.0.0.1:4222).
# When nothing answers there and nats-server is installed, a throwaway one is started on a free
# port in a temporary folder and stopped afterwards. The restart tests start private servers
# of their own with the same program (NATS_SERVER names it if it is not on PATH or in /usr/sbin).
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"

# host and port from postgres://user@host:port/db (defaults 127.0.0.1:5432)
authority="${DATABASE_URL#*://}"; authority="${authority%%/*}"; authority="${authority##*@}"
host="${authority%%:*}"; port="${authority##*:}"
[ "$port" = "$authority" ] && port=5432
[ -n "$host" ] || host=127.0.0.1

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

cluster=""
stop_cluster() {
  [ -n "$cluster" ] || return 0
  as_owner "$pg_bin/pg_ctl" -D "$cluster/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$cluster"
}
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
nats_dir=""
nats_pid=""
stop_nats() {
  # A server stopped by its signal exits non-zero; that must not end the cleanup (set -e).
  if [ -n "$nats_pid" ]; then kill "$nats_pid" 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  if [ -n "$nats_dir" ]; then rm -rf "$nats_dir"; fi
  return 0
}
cleanup() { stop_nats || true; stop_cluster || true; }
trap cleanup EXIT

if ! answers "$host" "$port"; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$pg_bin" ] || pg_bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  if [ -x "$pg_bin/initdb" ] && { [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1; }; then
    echo "No PostgreSQL answers at $host:$port; starting a throwaway cluster with $pg_bin/initdb." >&2
    cluster=$(mktemp -d)
    chmod 777 "$cluster"
    as_owner "$pg_bin/initdb" -D "$cluster/data" -U postgres -A trust >/dev/null
    port=54329
    as_owner "$pg_bin/pg_ctl" -D "$cluster/data" -l "$cluster/log" -w \
      -o "-p $port -k $cluster -c listen_addresses=127.0.0.1" start >/dev/null
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  else
    cat >&2 <<MSG
No PostgreSQL answers at $host:$port (DATABASE_URL=$DATABASE_URL), and no initdb was found to
start a throwaway one. Either
  - start a server: on Debian/Ubuntu 'apt-get install postgresql' then
    'pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start'; or
  - point DATABASE_URL at a server whose user may create schemas, e.g.
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash scripts/test.sh
MSG
    exit 1
  fi
fi

export NATS_URL="${NATS_URL:-127.0.0.1:4222}"
nats_authority="${NATS_URL#*://}"; nats_authority="${nats_authority##*@}"
nats_host="${nats_authority%%:*}"; nats_port="${nats_authority##*:}"
[ "$nats_port" = "$nats_authority" ] && nats_port=4222

if ! answers "$nats_host" "$nats_port"; then
  nats_bin="${NATS_SERVER:-$(command -v nats-server 2>/dev/null || true)}"
  for candidate in /usr/sbin/nats-server /usr/local/bin/nats-server; do
    [ -n "$nats_bin" ] || { [ -x "$candidate" ] && nats_bin="$candidate"; }
  done
  if [ -n "$nats_bin" ] && [ -x "$nats_bin" ]; then
    nats_port=42220
    while answers 127.0.0.1 "$nats_port"; do nats_port=$((nats_port + 1)); done
    nats_dir=$(mktemp -d)
    echo "No NATS server answers at $nats_host:${NATS_URL##*:}; starting a throwaway one ($nats_bin -js) on port $nats_port." >&2
    "$nats_bin" -a 127.0.0.1 -p "$nats_port" -js -sd "$nats_dir" >"$nats_dir/log" 2>&1 &
    nats_pid=$!
    for _ in $(seq 1 100); do answers 127.0.0.1 "$nats_port" && break; sleep 0.1; done
    if ! answers 127.0.0.1 "$nats_port"; then
      echo "nats-server did not start; its log:" >&2
      cat "$nats_dir/log" >&2
      exit 1
    fi
    export NATS_URL="127.0.0.1:$nats_port"
  else
    cat >&2 <<MSG
No NATS server answers at $nats_host:$nats_port (NATS_URL=$NATS_URL), and no nats-server was
found to start a throwaway one. Either
  - install it: on Debian/Ubuntu 'apt-get install nats-server' (the tests start it themselves); or
  - start one with JetStream: 'nats-server -js' and point NATS_URL at it, e.g.
    NATS_URL=127.0.0.1:4222 bash scripts/test.sh
MSG
    exit 1
  fi
fi

locked=()
[ -f Cargo.lock ] && locked=(--locked)

cargo test --workspace --all-features "${locked[@]}" "$@"
