#!/usr/bin/env bash
# The full test suite: formatting, lints, then every test in the workspace.
# Installs what the tests need when it is missing (run as root on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (with a throwaway PostgreSQL for the store's cases)"
PG_TEST_COMMAND='cargo test --workspace --locked' bash scripts/pg-test.sh
