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
# Our collector's draining thread asks for real-time priority 1 for itself; it is started as
# the systemd unit starts it (dist/systemd/mta-sts-tlsrpt.service): without CAP_SYS_NICE and,
# with PRIORITY=realtime (the default), with LimitRTPRIO=1 (prlimit --rtprio=1); PRIORITY=normal
# runs it without, as a unit without that line would. Each row says what it got. A sender's
# datagrams in flight are charged to its own send buffer (net.core.wmem_default, which
# libtlsrpt keeps: about 170 datagrams, 3 ms at 50,000/s); the bench leaves it as it is.
# BUSY=N runs N CPU-bound shell loops beside the collectors, to show the result under load.
#
#   bench/collector.sh
#   COUNT=500000 RATE=50000 DOMAINS=10000 QLEN=4096 PRIORITY=realtime BUSY=0 bench/collector.sh
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
# ...and, for ours, the limits of the unit: as root, CAP_SYS_NICE dropped and LimitRTPRIO=1
# (prlimit --rtprio=1) or, with PRIORITY=normal, not. Where the hard limit cannot be raised
# (no CAP_SYS_RESOURCE), PRIORITY=realtime keeps root's CAP_SYS_NICE instead: the same grant.
priority=${PRIORITY:-realtime}
drop_nice=(setpriv --inh-caps=-sys_nice --bounding-set=-sys_nice)
case $priority in
    realtime)
        if prlimit --rtprio=1:1 -- "${drop_nice[@]}" true 2>/dev/null; then
            as_unit=(prlimit --rtprio=1:1 -- "${drop_nice[@]}")
            grant="LimitRTPRIO=1 (prlimit), no CAP_SYS_NICE"
        else
            as_unit=()
            grant="CAP_SYS_NICE (root; RLIMIT_RTPRIO cannot be raised here)"
        fi
        ;;
    normal)
        as_unit=(prlimit --rtprio=0:0 --nice=0:0 -- "${drop_nice[@]}")
        grant="neither LimitRTPRIO nor CAP_SYS_NICE"
        ;;
    *) echo "PRIORITY is realtime or normal, not $priority" >&2; exit 2 ;;
esac
if [ "$(id -u)" != 0 ] && [ "$priority" = normal ]; then
    as_unit=(prlimit --rtprio=0:0 --nice=0:0 --)
fi
busy=${BUSY:-0}

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
busy_pids=()
stop_busy() {
    for pid in "${busy_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    busy_pids=()
}
stop_collector() {
    if [ -n "$collector_pid" ]; then
        kill -TERM "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
        collector_pid=
    fi
}
trap 'stop_collector; stop_busy; rm -rf "$work"' EXIT

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
    "${in_queue_namespace[@]}" "${as_unit[@]}" "$mta_sts" tlsrpt collect --socket "$sock" \
        --data-dir "$dir/data" --no-send 2>"$dir/log" &
    collector_pid=$!
    wait_for_socket "$sock"
    local result
    result=$("$load" --socket "$sock" --count "$count" --rate "$2" --mode "$1")
    sleep 1.5
    stop_collector
    local committed
    committed=$("$mta_sts" tlsrpt status --json --data-dir "$dir/data" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["collected"]["datagrams"])')
    local drain
    drain=$(sed -n 's/.*the draining thread runs at \(real-time\|nice -*[0-9]*\|normal priority\).*/\1/p' "$dir/log" | head -1)
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["sent"], r["dropped"], sys.argv[2], r["offered_per_second"], r["seconds"], sys.argv[3].replace(" ", "-"))' \
        "$result" "$committed" "${drain:-unknown}"
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
    python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["sent"], r["dropped"], sys.argv[2], r["offered_per_second"], r["seconds"], "-")' \
        "$result" "$committed"
}

for _ in $(seq 1 "$busy"); do
    sh -c 'while :; do :; done' &
    busy_pids+=($!)
done

printf '\n== datagrams: %s per run (2 cores shared with the sender); load: %s\n' "$count" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$qlen" = system ]; then
    echo "datagram queue: net.unix.max_dgram_qlen = $system_qlen (the machine's setting)"
else
    echo "datagram queue: net.unix.max_dgram_qlen = $qlen, raised in each collector's own" \
        "network namespace (the machine's: $system_qlen); sender send buffer" \
        "net.core.wmem_default = $(cat /proc/sys/net/core/wmem_default) (libtlsrpt keeps it)"
fi
echo "our draining thread: PRIORITY=$priority ($grant);" \
    "$busy CPU-bound loops beside (BUSY); kernel.sched_rt_runtime_us =" \
    "$(cat /proc/sys/kernel/sched_rt_runtime_us)"
printf '%-16s %-12s %-10s %10s %10s %10s %8s %10s %-10s %s\n' \
    collector mode offered sent dropped committed loss% "taken/s" drain load
verdict=met
for mode in blocking nonblocking; do
    for r in 0 "$rate"; do
        for who in mta-sts tlsrpt-collectd; do
            if [ "$who" = mta-sts ]; then
                read -r sent dropped committed offered seconds drain < <(run_ours "$mode" "$r")
            else
                read -r sent dropped committed offered seconds drain < <(run_theirs "$mode" "$r")
            fi
            loss=$(python3 -c "print(f'{100*(1-$committed/$count):.3f}')")
            taken=$(python3 -c "print(f'{$committed/$seconds:.0f}')")
            label=$([ "$r" = 0 ] && echo max || echo "$r/s")
            printf '%-16s %-12s %-10s %10s %10s %10s %8s %10s %-10s %s\n' \
                "$who" "$mode" "$label" "$sent" "$dropped" "$committed" "$loss" "$taken" \
                "$drain" "$(cut -d' ' -f1 /proc/loadavg)"
            if [ "$who" = mta-sts ] && [ "$r" != 0 ] && [ "$committed" != "$count" ]; then
                verdict="NOT met (loss at $r/s, $mode)"
            fi
            if [ "$who" = mta-sts ] && [ "$r" != 0 ] && [ "$(python3 -c "print(int($offered >= $target))")" = 0 ]; then
                verdict="NOT measured (the sender offered only $offered/s)"
            fi
        done
    done
done
stop_busy
echo "target: >= $target datagrams/s with zero loss, blocking and non-blocking" \
    "(max_dgram_qlen $([ "$qlen" = system ] && echo "$system_qlen" || echo "$qlen")," \
    "PRIORITY=$priority, BUSY=$busy): $verdict"

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
