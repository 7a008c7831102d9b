#!/usr/bin/env bash
# Benchmark of `mta-sts resolver` against postfix-mta-sts-resolver (issue 12), side by side on
# the same testnet domains, in a network namespace of its own (DNS on 127.0.0.1:53 and policy
# hosts on 127.0.0.2:443 inside it; nothing leaves loopback):
#   1. the reply diff: a table of lab domains and key forms asked of both, every difference
#      printed (each is intended and documented in the README);
#   2. cached lookups over CONNECTIONS connections, one request at a time and pipelined DEPTH
#      deep: queries/s, p50/p99 for each, and the ratio. Target: >= 10x, p99 < 1 ms.
#
#   bench/resolver.sh                     # as root (network namespaces)
#   CONNECTIONS=64 DEPTH=16 SECONDS_PER_RUN=10 DOMAINS=200 bench/resolver.sh
set -euo pipefail
cd "$(dirname "$0")/.."

connections=${CONNECTIONS:-64}
depth=${DEPTH:-16}
seconds=${SECONDS_PER_RUN:-10}
domains=${DOMAINS:-200}
ns=mtasts-rbench-$$
work=$(mktemp -d /tmp/mta-sts-resolver-bench.XXXXXX)
venv=${RESOLVER_BENCH_VENV:-/tmp/mta-sts-bench-venv/postfix-mta-sts-resolver}

if [ -z "${RESOLVER_BENCH_BUILT:-}" ]; then
    echo "== building release binaries"
    cargo build --release --quiet -p mta-sts --bin mta-sts -p mta-sts-bench --bin resolver-load
fi
bin=$PWD/target/release

if [ ! -x "$venv/bin/mta-sts-daemon" ]; then
    echo "== installing postfix-mta-sts-resolver (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet postfix-mta-sts-resolver
fi

source scripts/netns.sh
netns_start "$ns" "$work"

ip netns exec "$ns" "$bin/resolver-load" lab --dir "$work" --domains "$domains" 2>"$work/lab.log" &
for _ in $(seq 100); do [ -e "$work/ready" ] && break; sleep 0.1; done
[ -e "$work/ready" ] || { cat "$work/lab.log"; echo "the lab did not start" >&2; exit 1; }

ip netns exec "$ns" "$bin/mta-sts" resolver --listen 127.0.0.1:8461 --ca-file "$work/ca.pem" \
    --data-dir "$work/data" \
    2>"$work/ours.log" &
cat > "$work/peer.yml" <<YAML
host: 127.0.0.1
port: 8462
cache:
  type: internal
  options:
    cache_size: 100000
default_zone:
  strict_testing: false
  timeout: 4
YAML
# The peer trusts the lab CA through OpenSSL's SSL_CERT_FILE.
SSL_CERT_FILE="$work/ca.pem" ip netns exec "$ns" "$venv/bin/mta-sts-daemon" -c "$work/peer.yml" \
    -v warn 2>"$work/peer.log" &
for port in 8461 8462; do
    for _ in $(seq 100); do
        ip netns exec "$ns" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null && break
        sleep 0.1
    done
done

echo "== reply diff (ours: mta-sts resolver, peer: postfix-mta-sts-resolver)"
ip netns exec "$ns" "$bin/resolver-load" diff --a 127.0.0.1:8461 --b 127.0.0.1:8462 \
    --keys "$work/keys.txt" | grep -v '^  same' || true

echo "== warming both caches with $domains domains"
ip netns exec "$ns" "$bin/resolver-load" diff --a 127.0.0.1:8461 --b 127.0.0.1:8462 \
    --keys "$work/bench-keys.txt" | tail -1 || true

run() { ip netns exec "$ns" "$bin/resolver-load" run --connect "127.0.0.1:$1" \
    --keys "$work/bench-keys.txt" --connections "$connections" --depth "$2" --seconds "$seconds"; }
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }

echo "== cached lookups, $connections connections, ${seconds}s per run (load: $(cut -d' ' -f1-3 /proc/loadavg); figures drop on a loaded machine)"
for d in 1 "$depth"; do
    ours=$(run 8461 "$d")
    peer=$(run 8462 "$d")
    q_ours=$(field queries_per_s "$ours"); q_peer=$(field queries_per_s "$peer")
    p99=$(field p99_us "$ours")
    ratio=$(awk -v a="$q_ours" -v b="$q_peer" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }')
    label=$([ "$d" = 1 ] && echo "one at a time" || echo "pipelined x$d")
    echo "$label:"
    echo "  ours: $ours"
    echo "  peer: $peer"
    verdict=$(awk -v r="$ratio" -v p="$p99" 'BEGIN { print (r >= 10 && p < 1000) ? "met" : "NOT met" }')
    echo "  ratio ${ratio}x; target (>= 10x, p99 < 1 ms): $verdict"
done
