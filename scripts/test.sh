#!/usr/bin/env bash
# The whole test suite: every crate's unit, integration and doc tests, the trybuild UI cases,
# the conformance suite on every store and the property tests. Extra arguments go to
# `cargo test`.
#
# The PostgreSQL tests use the server at DATABASE_URL (default: postgres://postgres@127.0.0.1:5432/test),
# each in fresh schemas that it drops. When nothing answers there and PostgreSQL's initdb is
# installed, a throwaway cluster is started in a temporary folder and stopped afterwards.
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

if ! answers "$host" "$port"; then
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$pg_bin" ] || pg_bin=$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")
  if [ -x "$pg_bin/initdb" ] && { [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1; }; then
    echo "No PostgreSQL answers at $host:$port; starting a throwaway cluster with $pg_bin/initdb." >&2
    cluster=$(mktemp -d)
    chmod 777 "$cluster"
    trap stop_cluster EXIT
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

locked=()
[ -f Cargo.lock ] && locked=(--locked)

cargo test --workspace --all-features "${locked[@]}" "$@"
