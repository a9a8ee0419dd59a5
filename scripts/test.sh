#!/usr/bin/env bash
# The whole test suite: every crate's unit, integration and doc tests, the trybuild UI cases,
# the conformance suite and the property tests. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

locked=()
[ -f Cargo.lock ] && locked=(--locked)

cargo test --workspace --all-features "${locked[@]}" "$@"
