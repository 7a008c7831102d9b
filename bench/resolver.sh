#!/usr/bin/env bash
# Benchmark of `mta-sts resolver` against postfix-mta-sts-resolver (issue 12), side by side on
# the same testnet domains, in a network namespace of its own (DNS on 127.0.0.1:53 and policy
# hosts on 127.0.0.2:443 inside it; nothing leaves loopback):
#   1. the reply diff: a table of lab domains and key forms asked of both, every difference
#      printed (each is intended and documented in the README);
#   2. cached lookups over CONNECTIONS connections, one request at a time and pipelined DEPTH
#      deep, closed loop (each connection sends again as soon as its replies are in: the
#      saturation throughput): queries/s, p50/p99 for each, and the ratio;
#   3. the same at a fixed offered rate (open loop) of RATE_FACTOR times the peer's throughput
#      just measured: the rate achieved and p50/p99 there. Closed loop at saturation, latency
#      is mostly queueing (p50 ~ CONNECTIONS / throughput), so the target (>= 10x the peer's
#      throughput with p99 < 1 ms) is judged here: offered >= 10x the peer, achieved in full,
#      p99 < 1 ms.
#
#   bench/resolver.sh                     # as root (network namespaces)
#   CONNECTIONS=64 DEPTH=16 SECONDS_PER_RUN=10 DOMAINS=200 RATE_FACTOR=10 bench/resolver.sh
set -euo pipefail
cd "$(dirname "$0")/.."

connections=${CONNECTIONS:-64}
depth=${DEPTH:-16}
seconds=${SECONDS_PER_RUN:-10}
domains=${DOMAINS:-200}
rate_factor=${RATE_FACTOR:-10}
threads=${GENERATOR_THREADS:-2}
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

echo "== warming both caches with $domains domains (each with two mx patterns: replies that differ only in their order are the peer's Python set, see the README)"
ip netns exec "$ns" "$bin/resolver-load" diff --a 127.0.0.1:8461 --b 127.0.0.1:8462 \
    --keys "$work/bench-keys.txt" | tail -1 || true

run() { ip netns exec "$ns" "$bin/resolver-load" run --connect "127.0.0.1:$1" \
    --keys "$work/bench-keys.txt" --connections "$connections" --depth "$2" --seconds "$seconds" \
    --threads "$threads" ${3:+--rate "$3"}; }
field() { sed -n "s/.*$1=\([0-9]*\).*/\1/p" <<<"$2"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

echo "== cached lookups, $connections connections, ${seconds}s per run, load generator on $threads threads"
echo "   (load average before: $(load); the machine is shared: figures drop on a loaded machine)"
for d in 1 "$depth"; do
    label=$([ "$d" = 1 ] && echo "one at a time" || echo "pipelined x$d")
    ours=$(run 8461 "$d")
    peer=$(run 8462 "$d")
    q_ours=$(field queries_per_s "$ours"); q_peer=$(field queries_per_s "$peer")
    ratio=$(awk -v a="$q_ours" -v b="$q_peer" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }')
    echo "$label, closed loop (saturation):"
    echo "  ours: $ours"
    echo "  peer: $peer"
    echo "  throughput ratio ${ratio}x (load: $(load))"
    rate=$(awk -v q="$q_peer" -v f="$rate_factor" 'BEGIN { printf "%.0f", q * f }')
    if [ "${rate:-0}" -gt 0 ]; then
        fixed=$(run 8461 "$d" "$rate")
        achieved=$(field queries_per_s "$fixed"); p99=$(field p99_us "$fixed")
        echo "$label, open loop at ${rate_factor}x the peer's throughput ($rate/s offered):"
        echo "  ours: $fixed"
        verdict=$(awk -v a="$achieved" -v r="$rate" -v p="$p99" -v f="$rate_factor" \
            'BEGIN { print (f >= 10 && a >= 0.98 * r && p < 1000) ? "met" : "NOT met" }')
        echo "  target (>= 10x the peer's throughput, p99 < 1 ms): $verdict (achieved $achieved/s of $rate/s offered, p99 ${p99} us; load: $(load))"
    fi
done
