#!/usr/bin/env bash
# The full test suite: formatting, lints, every test in the workspace (PostgreSQL required),
# the benchmarks' sanity checks and a short run of every fuzz target. Installs what the tests
# need when it is missing (run as root on a fresh machine). Fails on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---------------------------------------------------------------------------------------------
# What the tests need: one function per peer, each installing only when missing.

apt_updated=
apt_install() {
    echo "== installing $* (Debian)"
    if [ -z "$apt_updated" ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# rustfmt and clippy come with the toolchain here; add them if this one lacks them.
need_toolchain() {
    cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
    cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
}

# pebble: the ACME test server (server's ACME tests).
need_pebble() { command -v pebble >/dev/null || apt_install pebble; }

# curl: a real HTTPS client (server's HTTPS tests).
need_curl() { command -v curl >/dev/null || apt_install curl; }

# systemd-analyze: verifies the unit files in dist/ (the package starts nothing in a container).
need_systemd_analyze() { command -v systemd-analyze >/dev/null || apt_install systemd; }

# Postfix: the real MTA of the resolver's end-to-end test (scripts/postfix-test.sh). Debian's
# package installs without prompts and starts nothing.
need_postfix() { command -v postfix >/dev/null || apt_install postfix; }

# Dovecot: the real IMAP server of `reports ingest imaps://...` (crates/cli/tests/ingest_imap.rs
# starts one of its own; the package's service is not started).
need_dovecot() { [ -x /usr/sbin/dovecot ] || apt_install dovecot-imapd; }

# ip and nft: the check's silent-host test drops SYNs in a network namespace of its own.
need_netns_tools() {
    command -v ip >/dev/null || apt_install iproute2
    command -v nft >/dev/null || apt_install nftables
}

# Chromium: the real browser of the dashboard test (crates/cli/tests/dashboard_browser.rs),
# driven over the DevTools protocol; Debian's package starts nothing.
need_chromium() { command -v chromium >/dev/null || apt_install chromium; }

# cargo-fuzz: builds and runs the fuzz targets (scripts/fuzz.sh).
need_cargo_fuzz() { command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz; }

# PostgreSQL is installed by scripts/pg-test.sh when missing.

# ---------------------------------------------------------------------------------------------
# The steps, in order.

fmt() { cargo fmt --all -- --check; }

clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }

# Every test, with a throwaway PostgreSQL for the store's cases and Dovecot for the IMAP
# cases (which then fail, not skip, without them).
tests() {
    MTA_STS_REQUIRE_DOVECOT=1 PG_TEST_COMMAND='cargo test --workspace --locked' \
        bash scripts/pg-test.sh
}

# Real Postfix asking `mta-sts resolver`, in a network namespace of its own (the test is
# ignored in the plain workspace run above, which cannot bind ports 25, 53 and 443).
postfix_e2e() { bash scripts/postfix-test.sh; }

# Each bench run once in its quick mode (no --bench argument): it compiles and its sanity
# checks hold (the store's bench on PostgreSQL too).
bench_checks() { PG_TEST_COMMAND='cargo test --workspace --benches --locked' bash scripts/pg-test.sh; }

# Every fuzz target builds and survives a short run from its seeds. An unoptimised build: it
# takes a fraction of the release build's time, and 20 s from the seeds need no speed.
fuzz_smoke() { FUZZ_PROFILE=${FUZZ_PROFILE:-dev} bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"; }

# ---------------------------------------------------------------------------------------------

timings=()
step() {
    local name=$1 started=$SECONDS
    echo "== $name"
    "$@"
    timings+=("$(printf '%-14s %5d s' "$name" $((SECONDS - started)))")
}

need_toolchain
need_pebble
need_curl
need_systemd_analyze
need_postfix
need_dovecot
need_netns_tools
need_chromium
need_cargo_fuzz

step fmt
step clippy
step tests
step postfix_e2e
step bench_checks
step fuzz_smoke

echo "== all steps passed in $SECONDS s"
printf '   %s\n' "${timings[@]}"
