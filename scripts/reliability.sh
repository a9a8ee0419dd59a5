#!/usr/bin/env bash
# The reliability suite: SIGKILL tests (writers and projection workers), PostgreSQL connection
# terminations and restarts, command interleavings, rebuilds next to a live service (and one
# SIGKILLed and run again) on SQLite and PostgreSQL, 64 clients on one order, the bad-input
# corpus, and schemathesis against the service's OpenAPI document. Prints a summary.
#
#   bash scripts/reliability.sh          short mode (the counts CI runs: 5 kills each)
#   bash scripts/reliability.sh --long   long mode (50 kills each, 5 minutes of fuzzing per target)
#
# Needs what the test suite needs (see scripts/test.sh): a PostgreSQL at DATABASE_URL.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}"
if [ "${1:-}" = "--long" ]; then
  export ES_LONG=1
  echo "reliability: long mode" >&2
fi

locked=()
[ -f Cargo.lock ] && locked=(--locked)

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test "${locked[@]}" -p es-postgres --test kill --test leases --test restart --test bad_inputs -- --nocapture 2>&1 | tee -a "$log" || status=1
cargo test "${locked[@]}" -p order-service --test corpus --test concurrency --test http_crash \
  --test live_rebuild --test hot_order -- --nocapture 2>&1 | tee -a "$log" || status=1
# The HTTP contract: schemathesis against /openapi.json on SQLite and PostgreSQL.
examples=50
[ -n "${ES_LONG:-}" ] && examples=500
bash scripts/schemathesis.sh "$examples" 2>&1 | tee -a "$log" || status=1
if [ -n "${ES_LONG:-}" ]; then
  # Fuzzing needs nightly and cargo-fuzz; the long mode runs each target for 5 minutes.
  bash scripts/fuzz.sh 300 2>&1 | tee -a "$log" || status=1
fi

echo
echo "== reliability summary"
grep -h '^RELIABILITY' "$log" | sed 's/^RELIABILITY /  /' || true
failed=$({ grep -hE '^test result: .* [1-9][0-9]* failed' "$log" || true; } | wc -l)
echo "  test binaries with failures: $failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  echo "reliability: FAILED" >&2
  exit 1
fi
echo "reliability: all passed"
