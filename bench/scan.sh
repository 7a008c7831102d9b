#!/usr/bin/env bash
# Benchmark of `mta-sts scan` (issue 15) against checkdmarc, side by side on the same testnet
# lab of generated domains on a few shared MX fleets, in a network namespace of its own (DNS on
# 127.0.0.1:53, policy hosts on port 443, MX hosts on port 25; nothing leaves loopback):
#   1. mta-sts scan (release) of the first DOMAINS domains with SMTP: domains/s, peak RSS, and
#      every verdict checked against the lab's truth;
#   2. checkdmarc (PyPI, in a virtualenv this script makes) on the first PEER_DOMAINS of the
#      same domains, one at a time as it works: domains/s, and the ratio;
#   3. mta-sts scan --no-smtp of DOMAINS and of BIG domains: peak RSS must not grow.
# Targets: DOMAINS=10000 with SMTP in < 20 s (>= 500/s, >= 13x checkdmarc), peak RSS < 300 MB,
# RSS flat from 10,000 to 100,000.
#
#   bench/scan.sh                                   # as root (network namespaces)
#   DOMAINS=10000 BIG=100000 FLEETS=4 PEER_DOMAINS=1000 bench/scan.sh
#   CONCURRENCY=64 bench/scan.sh                    # a --concurrency other than the default
# The scans run as the held-out command line does, with the defaults: only --domains,
# --ca-file and --out (and --no-smtp for the memory runs).
set -euo pipefail
cd "$(dirname "$0")/.."

domains=${DOMAINS:-10000}
big=${BIG:-100000}
fleets=${FLEETS:-4}
peer_domains=${PEER_DOMAINS:-1000}
concurrency=${CONCURRENCY:-}
ns=mtasts-sbench-$$
work=$(mktemp -d /tmp/mta-sts-scan-bench.XXXXXX)
venv=${SCAN_BENCH_VENV:-/tmp/mta-sts-bench-venv/checkdmarc}

for tool in ip python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/scan.sh needs $tool" >&2; exit 2; }
done

echo "== building release binaries"
cargo build --release --quiet -p mta-sts --bin mta-sts -p mta-sts-bench --bin scan-lab
bin=$PWD/target/release

if [ ! -x "$venv/bin/checkdmarc" ]; then
    echo "== installing checkdmarc (PyPI) into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet checkdmarc
fi

source scripts/netns.sh
netns_start "$ns" "$work"

lab_size=$(( big > domains ? big : domains ))
echo "== starting the lab: $lab_size domains on $fleets MX fleets"
ip netns exec "$ns" "$bin/scan-lab" serve --dir "$work" --domains "$lab_size" --fleets "$fleets" \
    2>"$work/lab.log" &
for _ in $(seq 6000); do [ -e "$work/ready" ] && break; sleep 0.1; done
[ -e "$work/ready" ] || { cat "$work/lab.log"; echo "the lab did not start" >&2; exit 1; }
head -n "$domains" "$work/domains.txt" > "$work/domains-small.txt"
head -n "$peer_domains" "$work/domains.txt" > "$work/domains-peer.txt"

# (checkdmarc's -n and -o take several values: the domains file goes first.)
# One scan: prints "seconds rss_kb"; results in $work/$1.jsonl.
scan() {
    local name=$1 list=$2; shift 2
    rm -f "$work/$name.jsonl" "$work/$name.jsonl.resume"
    ip netns exec "$ns" /usr/bin/time -f "%e %M" -o "$work/$name.time" \
        "$bin/mta-sts" scan --domains "$list" --ca-file "$work/ca.pem" --out "$work/$name.jsonl" \
        ${concurrency:+--concurrency "$concurrency"} "$@" >/dev/null 2>"$work/$name.log" \
        || { cat "$work/$name.log" >&2; echo "mta-sts scan failed" >&2; exit 1; }
    tail -1 "$work/$name.time"
}
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

echo "== machine load before the runs: $(uptime)"
echo "== mta-sts scan, $domains domains with SMTP, concurrency ${concurrency:-default}"
read -r ours_s ours_kb <<<"$(scan smtp "$work/domains-small.txt")"
"$bin/scan-lab" verify --results "$work/smtp.jsonl" --expect "$domains"
ours_rate=$(rate "$domains" "$ours_s")
echo "  ${ours_s} s, ${ours_rate} domains/s, peak RSS $((ours_kb / 1024)) MB"

echo "== checkdmarc, the first $peer_domains domains (one at a time)"
start=$(date +%s.%N)
SSL_CERT_FILE="$work/ca.pem" REQUESTS_CA_BUNDLE="$work/ca.pem" \
    ip netns exec "$ns" /usr/bin/time -f "%e %M" -o "$work/peer.time" \
    "$venv/bin/checkdmarc" "$work/domains-peer.txt" --check-mx-tls -t 2 -n 127.0.0.1 \
    -o "$work/peer.json" >/dev/null 2>"$work/peer.log" || true
read -r peer_s peer_kb <<<"$(tail -1 "$work/peer.time")"
peer_checked=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d) if isinstance(d, list) else 1)' "$work/peer.json" 2>/dev/null || echo 0)
[ "$peer_checked" = "$peer_domains" ] || { tail -5 "$work/peer.log" >&2; echo "checkdmarc checked $peer_checked of $peer_domains domains" >&2; exit 1; }
peer_rate=$(awk -v n="$peer_domains" -v s="$peer_s" 'BEGIN { printf "%.1f", (s > 0 ? n / s : 0) }')
echo "  ${peer_s} s, ${peer_rate} domains/s, peak RSS $((peer_kb / 1024)) MB"

echo "== mta-sts scan --no-smtp, $domains and $big domains (memory)"
read -r small_s small_kb <<<"$(scan small "$work/domains-small.txt" --no-smtp)"
"$bin/scan-lab" verify --results "$work/small.jsonl" --expect "$domains" --no-smtp
read -r big_s big_kb <<<"$(scan big "$work/domains.txt" --no-smtp)"
"$bin/scan-lab" verify --results "$work/big.jsonl" --expect "$big" --no-smtp
echo "  $domains: ${small_s} s, $(rate "$domains" "$small_s") domains/s, peak RSS $((small_kb / 1024)) MB"
echo "  $big: ${big_s} s, $(rate "$big" "$big_s") domains/s, peak RSS $((big_kb / 1024)) MB"
echo "== machine load after the runs: $(uptime)"

ratio=$(awk -v a="$ours_rate" -v b="$peer_rate" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }')
growth=$(awk -v a="$small_kb" -v b="$big_kb" 'BEGIN { printf "%.2f", b / a }')
echo "== summary"
echo "  mta-sts scan: $domains domains with SMTP in ${ours_s} s (${ours_rate}/s), peak RSS $((ours_kb / 1024)) MB"
echo "  checkdmarc:   ${peer_rate}/s; ratio ${ratio}x"
echo "  RSS $big vs $domains domains (--no-smtp): ${growth}x"
verdict=$(awk -v s="$ours_s" -v r="$ratio" -v m="$ours_kb" -v g="$growth" \
    'BEGIN { print (s < 20 && r >= 13 && m < 300 * 1024 && g < 1.2) ? "met" : "NOT met" }')
echo "  targets (< 20 s, >= 13x, < 300 MB, RSS flat within 20 %): $verdict"
