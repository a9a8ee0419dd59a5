#!/usr/bin/env bash
# Runs the cargo-fuzz targets (tests/fuzz) for a bounded time each: the event envelope decoder
# and the order service's HTTP request handling. Needs a nightly toolchain and cargo-fuzz
# (`rustup toolchain install nightly`, `cargo install cargo-fuzz`).
#
#   bash scripts/fuzz.sh [seconds per target, default 60]
#
# A crash leaves its input in tests/fuzz/artifacts/<target>/; turn it into a regression case
# (the HTTP corpus in examples/order-service/tests/corpus/http.jsonl, or a unit test).
set -euo pipefail
cd "$(dirname "$0")/../tests/fuzz"
seconds="${1:-60}"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: needs a nightly toolchain and cargo-fuzz: rustup toolchain install nightly; cargo install cargo-fuzz" >&2
  exit 1
fi

status=0
for target in decode_envelope http_request; do
  log=$(mktemp)
  if cargo +nightly fuzz run --fuzz-dir . "$target" -- -max_total_time="$seconds" >"$log" 2>&1; then
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    echo "RELIABILITY fuzz $target: $runs inputs in ${seconds} s, failures: 0"
  else
    echo "RELIABILITY fuzz $target: failures: 1 (see tests/fuzz/artifacts/$target)"
    tail -n 40 "$log" >&2
    status=1
  fi
  rm -f "$log"
done
exit "$status"
