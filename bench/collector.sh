#!/usr/bin/env bash
# Benchmark of the TLS-RPT collector (issue 14), side by side with sys4's tlsrpt-collectd
# (PyPI tlsrpt-reporter, in a virtualenv this script makes): `tlsrpt-load` in a second process
# sends COUNT datagrams to each collector's unix datagram socket, blocking and non-blocking (as
# libtlsrpt sends), as fast as it can and at RATE/s; afterwards each collector's store is read
# for how many datagrams it committed. Then the time to build and write the reports of DOMAINS
# domains for one day (`tlsrpt send --out`).
#
# Target: >= 50,000 datagrams/s with zero loss, blocking and non-blocking.
#
# Linux queues at most net.unix.max_dgram_qlen datagrams (default 10) on a unix datagram
# socket, whatever its SO_RCVBUF, so a non-blocking sender loses what a burst brings beyond
# that. As the README tells operators to, the collectors (both) run with QLEN (default 4096,
# dist/sysctl.d/60-mta-sts-tlsrpt.conf): as root, each in a network namespace of its own
# where the sysctl is raised (pathname sockets reach across namespaces; the machine's setting
# is left alone). QLEN=system runs them with the machine's setting.
#
#   bench/collector.sh
#   COUNT=500000 RATE=50000 DOMAINS=10000 QLEN=4096 bench/collector.sh
set -euo pipefail
cd "$(dirname "$0")/.."

count=${COUNT:-500000}
rate=${RATE:-50000}
domains=${DOMAINS:-10000}
target=50000
qlen=${QLEN:-4096}
system_qlen=$(cat /proc/sys/net/unix/max_dgram_qlen 2>/dev/null || echo unknown)
if [ "$qlen" != system ] && ! unshare -n sysctl -qw "net.unix.max_dgram_qlen=$qlen" 2>/dev/null; then
    echo "cannot raise net.unix.max_dgram_qlen in a network namespace (needs root and unshare);" \
        "running with the machine's $system_qlen" >&2
    qlen=system
fi
# What the collectors are started under: a network namespace with the datagram queue raised
# (unshare and sh exec, so $! is the collector's own pid).
in_queue_namespace=()
if [ "$qlen" != system ]; then
    in_queue_namespace=(unshare -n sh -c 'sysctl -qw "net.unix.max_dgram_qlen=$0" && exec "$@"' "$qlen")
fi

if [ -z "${COLLECTOR_BENCH_BUILT:-}" ]; then
    echo "== building release binaries"
    cargo build --release --quiet -p mta-sts --bin mta-sts -p mta-sts-bench --bin tlsrpt-load
fi
release_dir=${CARGO_TARGET_DIR:-target}/release
mta_sts=$release_dir/mta-sts
load=$release_dir/tlsrpt-load

venv=${TLSRPT_VENV:-/tmp/mta-sts-bench-tlsrpt-venv}
if [ ! -x "$venv/bin/tlsrpt-collectd" ]; then
    echo "== installing tlsrpt-reporter into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet tlsrpt-reporter
fi

work=$(mktemp -d /tmp/mta-sts-collector-bench.XXXXXX)
collector_pid=
stop_collector() {
    if [ -n "$collector_pid" ]; then
        kill -TERM "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
        collector_pid=
    fi
}
trap 'stop_collector; rm -rf "$work"' EXIT

wait_for_socket() {
    for _ in $(seq 1 100); do
        [ -S "$1" ] && return 0
        sleep 0.1
    done
    echo "no socket at $1" >&2
    exit 1
}

# run_ours MODE RATE → prints "sent dropped committed offered/s"
run_ours() {
    local dir=$work/ours-$1-$2 sock
    mkdir -p "$dir"
    sock=$dir/tlsrpt.sock
    "${in_queue_namespace[@]}" "$mta_sts" tlsrpt collect --socket "$sock" --data-dir "$dir/data" \
        --no-send 2>"$dir/log" &
    collector_pid=$!
    wait_for_socket "$sock"
    local result
    result=$("$load" --socket "$sock" --count "$count" --rate "$2" --mode "$1")
    sleep 1.5
    stop_collector
    local committed
    committed=$("$mta_sts" tlsrpt status --json --data-dir "$dir/data" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["collected"]["datagrams"])')
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["sent"], r["dropped"], sys.argv[2], r["offered_per_second"], r["seconds"])' \
        "$result" "$committed"
}

run_theirs() {
    local dir=$work/theirs-$1-$2 sock
    mkdir -p "$dir"
    sock=$dir/tlsrpt.sock
    "${in_queue_namespace[@]}" "$venv/bin/tlsrpt-collectd" --socketname "$sock" \
        --storage "sqlite://$dir/collectd.sqlite" --logfilename "$dir/log" >/dev/null 2>&1 &
    collector_pid=$!
    wait_for_socket "$sock"
    local result
    result=$("$load" --socket "$sock" --count "$count" --rate "$2" --mode "$1")
    # It commits on its socket timeout (5 s) and on SIGTERM.
    sleep 6
    stop_collector
    local committed
    committed=$(python3 - "$dir/collectd.sqlite" <<'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
print(con.execute("SELECT COALESCE(SUM(cntrtotal), 0) FROM finalresults").fetchone()[0])
PY
)
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["sent"], r["dropped"], sys.argv[2], r["offered_per_second"], r["seconds"])' \
        "$result" "$committed"
}

printf '\n== datagrams: %s per run (2 cores shared with the sender); load: %s\n' "$count" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$qlen" = system ]; then
    echo "datagram queue: net.unix.max_dgram_qlen = $system_qlen (the machine's setting)"
else
    echo "datagram queue: net.unix.max_dgram_qlen = $qlen, raised in each collector's own" \
        "network namespace (the machine's: $system_qlen); sender send buffer" \
        "net.core.wmem_default = $(cat /proc/sys/net/core/wmem_default) (libtlsrpt keeps it)"
fi
printf '%-16s %-12s %-10s %10s %10s %10s %10s %12s\n' \
    collector mode offered sent dropped committed loss% "taken/s"
verdict=met
for mode in blocking nonblocking; do
    for r in 0 "$rate"; do
        for who in mta-sts tlsrpt-collectd; do
            if [ "$who" = mta-sts ]; then
                read -r sent dropped committed offered seconds < <(run_ours "$mode" "$r")
            else
                read -r sent dropped committed offered seconds < <(run_theirs "$mode" "$r")
            fi
            loss=$(python3 -c "print(f'{100*(1-$committed/$count):.1f}')")
            taken=$(python3 -c "print(f'{$committed/$seconds:.0f}')")
            label=$([ "$r" = 0 ] && echo max || echo "$r/s")
            printf '%-16s %-12s %-10s %10s %10s %10s %10s %12s\n' \
                "$who" "$mode" "$label" "$sent" "$dropped" "$committed" "$loss" "$taken"
            if [ "$who" = mta-sts ] && [ "$r" != 0 ] && [ "$committed" != "$count" ]; then
                verdict="NOT met (loss at $r/s, $mode)"
            fi
            if [ "$who" = mta-sts ] && [ "$r" != 0 ] && [ "$(python3 -c "print(int($offered >= $target))")" = 0 ]; then
                verdict="NOT measured (the sender offered only $offered/s)"
            fi
        done
    done
done
echo "target: >= $target datagrams/s with zero loss, blocking and non-blocking" \
    "(max_dgram_qlen $([ "$qlen" = system ] && echo "$system_qlen" || echo "$qlen")): $verdict"

printf '\n== reports: %s domains, one day\n' "$domains"
dir=$work/build
mkdir -p "$dir"
python3 - "$domains" >"$dir/lines" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n * 3):
    d = f"d{i % n}.example"
    f = int(i % 7 == 0)
    fd = ',"failure-details":[{"c":202,"s":"192.0.2.1","r":"198.51.100.7"}]' if f else ""
    print('{"dpv":"1","d":"%s","pr":"v=TLSRPTv1; rua=mailto:tls@%s","policies":[{"policy-type":2,'
          '"policy-string":["version: STSv1","mode: enforce","mx: mx.%s","max_age: 86400"],'
          '"policy-domain":"%s","mx-host":["mx.%s"],"f":%d,"t":%d%s}]}' % (d, d, d, d, d, f, f, fd))
PY
"$mta_sts" tlsrpt collect --stdin --now 1793534400 --data-dir "$dir/data" <"$dir/lines" 2>/dev/null
start=$(date +%s.%N)
"$mta_sts" tlsrpt send --day 2026-11-01 --out "$dir/out" --data-dir "$dir/data" >/dev/null
end=$(date +%s.%N)
written=$(find "$dir/out" -name '*.json.gz' | wc -l)
python3 -c "print(f'built and wrote {$written} reports (+ mails) in {$end-$start:.2f} s')"
