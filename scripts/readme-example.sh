#!/usr/bin/env bash
# Builds and runs the README's "A complete example" as a user would: pasted into a crate of its
# own whose [dependencies] are the ones the README lists (es-core from this checkout), outside
# the workspace. Fails if the example does not compile or its assertions fail.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
crate=$(mktemp -d)
trap 'rm -rf "$crate"' EXIT
mkdir -p "$crate/src"
# The [dependencies] block the README gives, with es-core pointed at this checkout.
awk '/^## A complete example/{f=1} f&&/^```toml/{p=1;next} p&&/^```/{exit} p{print}' README.md \
  | sed "s|^es-core = .*|es-core = { path = \"$root/es-core\" }|" > "$crate/dependencies.toml"
grep -q '^es-core' "$crate/dependencies.toml" || { echo "readme-example: no [dependencies] block found in README.md" >&2; exit 1; }
{
  printf '[package]\nname = "readme-example"\nversion = "0.1.0"\nedition = "2024"\npublish = false\n\n'
  cat "$crate/dependencies.toml"
  printf '\n[workspace]\n'
} > "$crate/Cargo.toml"
awk '/^## A complete example/{f=1} f&&/^```rust/{p=1;next} p&&/^```/{exit} p{print}' README.md > "$crate/src/main.rs"
# The workspace's lock file: the same versions as the workspace builds, already downloaded.
cp Cargo.lock "$crate/"
CARGO_TARGET_DIR="$root/target/readme-example" cargo run --quiet --manifest-path "$crate/Cargo.toml"
echo "readme-example: the README's complete example builds and runs on its own"
