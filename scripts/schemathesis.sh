#!/usr/bin/env bash
# The HTTP contract: schemathesis (from PyPI) generates requests from the order service's own
# OpenAPI document (GET /openapi.json) and checks every answer, on SQLite and on PostgreSQL:
# no 5xx, and every status code, content type, header and body as the document says.
#
#   bash scripts/schemathesis.sh            50 examples per operation and phase
#   bash scripts/schemathesis.sh 500        more
#
# Needs python3 with venv and pip (schemathesis is installed, pinned, into
# target/schemathesis-venv on first use) and a PostgreSQL at DATABASE_URL (default
# postgres://postgres@127.0.0.1:5432/test); the run uses a schema of its own and drops it.
set -euo pipefail
cd "$(dirname "$0")/.."

examples="${1:-50}"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
schemathesis_version=4.32.5
venv="$PWD/target/schemathesis-venv"
checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
  echo "schemathesis: installing schemathesis $schemathesis_version into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

authority="${DATABASE_URL#*://}"; authority="${authority%%/*}"; authority="${authority##*@}"
pg_host="${authority%%:*}"; pg_port="${authority##*:}"
[ "$pg_port" = "$authority" ] && pg_port=5432
if ! (exec 3<>"/dev/tcp/${pg_host:-127.0.0.1}/$pg_port") 2>/dev/null; then
  echo "schemathesis: no PostgreSQL answers at ${pg_host:-127.0.0.1}:$pg_port (DATABASE_URL); start one or point DATABASE_URL at one" >&2
  exit 1
fi

locked=()
[ -f Cargo.lock ] && locked=(--locked)
cargo build "${locked[@]}" -p order-service
# shellcheck source=scripts/service.sh
source scripts/service.sh

work=$(mktemp -d)
pg_schema="schemathesis_$$"
cleanup() {
  stop_service
  psql -q "$DATABASE_URL" -c "drop schema if exists $pg_schema cascade" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

stop() {
  stop_service
  # A 5xx is logged with its cause; show it with the failure.
  if grep -q 'request failed' "$work/log"; then
    echo "schemathesis: the service logged failures:" >&2
    grep 'request failed' "$work/log" | head -n 20 >&2
    return 1
  fi
}

status=0
for store in sqlite postgres; do
  if [ "$store" = sqlite ]; then
    start_service "$work/log" --database-url "sqlite://$work/events.sqlite"
  else
    start_service "$work/log" --database-url "$DATABASE_URL" --pg-schema "$pg_schema"
  fi
  echo "== schemathesis on $store ($service_url, $examples examples per operation)"
  # Run from the temporary folder: schemathesis keeps a cache in its working directory.
  if ! (cd "$work" && "$venv/bin/schemathesis" run "$service_url/openapi.json" \
      --checks "$checks" \
      --max-examples "$examples" \
      --seed 20261207 \
      --workers 1 \
      --request-timeout 10 \
      --no-color); then
    echo "schemathesis: FAILED on $store" >&2
    status=1
  fi
  stop || status=1
done
exit "$status"
