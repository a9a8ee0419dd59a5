#!/usr/bin/env bash
# Runs the README's curl session ("Run it", the block after "In another terminal") against the
# order service on a fresh SQLite file, as a user would, and checks that it shows what its
# comments promise: status lines and headers where it says so, each answer on lines of its own,
# the 422 and 409 refusals with their codes, ETag and current_version.
set -euo pipefail
cd "$(dirname "$0")/.."

session=$(awk '/^## Run it/{f=1} f&&/^```sh/{n++; if(n==2){p=1;next}} p&&/^```/{exit} p{print}' README.md)
[ -n "$session" ] || { echo "readme-session: no curl session found under '## Run it' in README.md" >&2; exit 1; }

locked=()
[ -f Cargo.lock ] && locked=(--locked)
cargo build "${locked[@]}" --quiet -p order-service

# shellcheck source=scripts/service.sh
source scripts/service.sh
work=$(mktemp -d)
cleanup() {
  stop_service
  rm -rf "$work"
}
trap cleanup EXIT

start_service "$work/log" --database-url "sqlite://$work/orders.db"
address=${service_url#http://}

# The session as written, on the port this service took.
printf '%s\n' "$session" | sed "s|localhost:8080|$address|g" >"$work/session.sh"
(cd "$work" && bash -euo pipefail session.sh) >"$work/out" 2>&1 || {
  echo "readme-session: the session failed:" >&2; cat "$work/out" >&2; exit 1; }

failed=0
expect() {
  local what=$1 pattern=$2
  if ! grep -qiE -- "$pattern" "$work/out"; then
    echo "readme-session: the output does not show $what (/$pattern/)" >&2
    failed=1
  fi
}
expect "the 201 status line" '^HTTP/1\.1 201 Created'
expect "the Location header" '^location: /orders/[0-9a-f-]{36}'
expect "the order at version 1" '"version":1[,}]'
expect "status codes on lines of their own" '^200$'
expect "the shipped order" '"status":"shipped"'
expect "the order as it was at version 2" '"version":2,.*"status":"placed"'
expect "the events with metadata" '"metadata":\{"correlation_id"'
expect "the order_summary rows" '^\[\{"id":.*"status":"shipped"'
expect "the health report" '"status":"ok"'
expect "the 422 status line" '^HTTP/1\.1 422'
expect "the already_paid code" '"code":"already_paid"'
expect "the 409 status line" '^HTTP/1\.1 409'
expect "the ETag of version 4" '^etag: "4"'
expect "the version conflict with current_version 4" '"code":"version_conflict".*"current_version":4|"current_version":4.*"code":"version_conflict"'
# Each JSON answer ends its line: no answer runs into the next one or into a status code.
if grep -qE '\}(HTTP|\{|\[|[0-9]{3}$)' "$work/out"; then
  echo "readme-session: an answer runs into what follows it:" >&2
  grep -nE '\}(HTTP|\{|\[|[0-9]{3}$)' "$work/out" >&2
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "readme-session: the whole output:" >&2
  cat "$work/out" >&2
  exit 1
fi
echo "readme-session: the README's curl session shows what its comments say"
