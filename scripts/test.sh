#!/usr/bin/env bash
# The full test suite: formatting, lints, then every test in the workspace.
# Installs what the tests need when it is missing (run as root on a fresh machine).
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers the tests use: pebble (ACME test server), curl, and systemd-analyze (verifies the
# unit files in dist/; the package starts nothing in a container). PostgreSQL is installed by
# scripts/pg-test.sh below.
missing=()
command -v pebble >/dev/null || missing+=(pebble)
command -v curl >/dev/null || missing+=(curl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# rustfmt and clippy come with the toolchain here; add them if this one lacks them.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (with a throwaway PostgreSQL for the store's cases)"
PG_TEST_COMMAND='cargo test --workspace --locked' bash scripts/pg-test.sh
