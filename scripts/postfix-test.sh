#!/usr/bin/env bash
# Real Postfix end to end (issue 12): runs crates/cli/tests/postfix_e2e.rs inside a network
# namespace of its own (mtasts-pfx-PID), whose resolv.conf points at the lab's DNS on
# 127.0.0.1:53, so that Debian's Postfix and `mta-sts resolver` (with no --resolver) resolve the
# lab's domains and reach its policy hosts (443) and MX hosts (25); nothing leaves the
# namespace's loopback. Postfix must be installed (scripts/test.sh installs it). Run as root.
#   bash scripts/postfix-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v postfix >/dev/null || { echo "postfix is not installed (scripts/test.sh installs it)" >&2; exit 1; }
ns=mtasts-pfx-$$

# Built outside the namespace, which has no network for cargo.
cargo test -p mta-sts --test postfix_e2e --locked --no-run

source scripts/netns.sh
netns_start "$ns"

MTA_STS_POSTFIX_NETNS=$ns ip netns exec "$ns" \
    cargo test -p mta-sts --test postfix_e2e --locked --offline -- --ignored --nocapture
