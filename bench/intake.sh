#!/usr/bin/env bash
# End-to-end benchmark of the TLS-RPT HTTPS intake (issue 4): `mta-sts serve` (release build)
# on a loopback address with a fresh store, loaded by `intake-load` in a second process with
# CLIENTS keep-alive HTTPS clients posting distinct gzip reports. Prints acked reports/s and
# p50/p99 latency per backend, and whether the target is met (issue 7: >= 10,000 reports/s on
# SQLite and >= 5,000/s on PostgreSQL, p99 < 100 ms at 64 clients). Every run uses a fresh
# database (a new data directory; a new PostgreSQL database, dropped afterwards), and counts the
# reports stored against the 201s: the run fails if one is missing or cannot be counted
# (`sqlite3` and `psql` are installed when missing).
#
#   bench/intake.sh            # SQLite, then PostgreSQL (throwaway, via scripts/pg-test.sh)
#   bench/intake.sh sqlite     # one backend only
#   bench/intake.sh postgres   # uses MTA_STS_TEST_POSTGRES_URL if set, else starts one
#   CLIENTS=64 DURATION=20 WARMUP=2 bench/intake.sh
set -euo pipefail
cd "$(dirname "$0")/.."

backends=${1:-all}
case "$backends" in
    all) backends="sqlite postgres" ;;
    sqlite | postgres) ;;
    *) echo "usage: bench/intake.sh [all|sqlite|postgres]" >&2; exit 2 ;;
esac
clients=${CLIENTS:-64}
duration=${DURATION:-20}
warmup=${WARMUP:-2}
target_p99_ms=100
target_rate() { case "$1" in sqlite) echo 10000 ;; postgres) echo 5000 ;; esac; }

# The lost-report check needs a client for each database: installed when missing, never skipped.
need_client() {
    local tool=$1 package=$2
    command -v "$tool" >/dev/null && return 0
    echo "== installing $package (for $tool)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    command -v "$tool" >/dev/null || {
        echo "bench/intake.sh: $tool is missing and could not be installed (apt-get install $package); the lost-report check needs it" >&2
        exit 1
    }
}
# Before anything is built: a missing client fails the run at once, not after the build.
for backend in $backends; do
    case "$backend" in
        sqlite) need_client sqlite3 sqlite3 ;;
        # Without a URL, scripts/pg-test.sh installs PostgreSQL (psql included) and runs this
        # script again with one, which then checks here.
        postgres) [ -z "${MTA_STS_TEST_POSTGRES_URL:-}" ] || need_client psql postgresql-client ;;
    esac
done

if [ -z "${INTAKE_BENCH_BUILT:-}" ]; then
    echo "== building release binaries"
    cargo build --release --quiet -p mta-sts --bin mta-sts -p mta-sts-bench --bin intake-load
fi
export INTAKE_BENCH_BUILT=1
release_dir=${CARGO_TARGET_DIR:-target}/release
mta_sts=$release_dir/mta-sts
intake_load=$release_dir/intake-load

work=$(mktemp -d /tmp/mta-sts-intake.XXXXXX)
server_pid=
stop_server() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
cleanup() {
    stop_server
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The outermost invocation collects every backend's RESULT line and prints the table; one run
# through scripts/pg-test.sh appends to the same file.
outermost=
if [ -z "${INTAKE_BENCH_RESULTS:-}" ]; then
    outermost=1
    export INTAKE_BENCH_RESULTS=$work/results
    : >"$INTAKE_BENCH_RESULTS"
fi

"$intake_load" gen-cert "$work" >/dev/null
printf 'version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax_age: 604800\r\n' >"$work/policy.txt"

port_is_free() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Runs one backend: bench_one LABEL STORE_FLAGS...
bench_one() {
    local label=$1 ip port addr deadline
    shift
    ip=127.0.$((RANDOM % 250 + 1)).$((RANDOM % 250 + 2))
    port=$((20000 + RANDOM % 20000))
    until port_is_free "$ip" "$port"; do port=$((port + 1)); done
    addr=$ip:$port
    echo "== $label: mta-sts serve on $addr"
    # Every load client connects from 127.0.0.1: the per-address cap (default 32, what a
    # sending MTA needs) is raised so that none of them is turned away.
    cat >"$work/serve.toml" <<EOF
[listen]
https = ["$addr"]
[tls]
cert = "cert.pem"
key = "key.pem"
[limits]
max_connections_per_ip = $((clients + 16))
[checks]
enabled = false
[[domain]]
name = "example.com"
policy_file = "policy.txt"
EOF
    "$mta_sts" serve --config "$work/serve.toml" "$@" >"$work/$label-server.log" 2>&1 &
    server_pid=$!
    deadline=$((SECONDS + 30))
    while port_is_free "$ip" "$port"; do
        if ! kill -0 "$server_pid" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
            echo "mta-sts serve did not start:" >&2
            cat "$work/$label-server.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    "$intake_load" run --connect "$addr" --ca "$work/ca.pem" --label "$label" \
        --clients "$clients" --duration "$duration" --warmup "$warmup" \
        --server-pid "$server_pid" | tee "$work/$label.out"
    stop_server
    local stored
    case "$label" in
        sqlite) stored=$(sqlite3 "$work/data/mta-sts.db" 'SELECT count(*) FROM reports') ;;
        postgres) stored=$(psql -qAt "$bench_database_url" -c 'SELECT count(*) FROM reports') ;;
    esac
    [[ "$stored" =~ ^[0-9]+$ ]] || { echo "cannot count the stored reports: $stored" >&2; exit 1; }
    echo "$(grep '^RESULT ' "$work/$label.out") stored=$stored" >>"$INTAKE_BENCH_RESULTS"
}

for backend in $backends; do
    case "$backend" in
        sqlite)
            rm -rf "$work/data"
            bench_one sqlite --data-dir "$work/data"
            ;;
        postgres)
            if [ -n "${MTA_STS_TEST_POSTGRES_URL:-}" ]; then
                # A database of its own, so rows of an earlier run cannot fill the count.
                bench_database=mta_sts_bench_$$_$RANDOM
                psql -qAt "$MTA_STS_TEST_POSTGRES_URL" -c "CREATE DATABASE $bench_database" >/dev/null
                bench_database_url=${MTA_STS_TEST_POSTGRES_URL%/*}/$bench_database
                bench_one postgres --database "$bench_database_url"
                psql -qAt "$MTA_STS_TEST_POSTGRES_URL" \
                    -c "DROP DATABASE $bench_database WITH (FORCE)" >/dev/null
            else
                PG_TEST_COMMAND="bench/intake.sh postgres" scripts/pg-test.sh
            fi
            ;;
    esac
done

[ -n "$outermost" ] || exit 0
# RESULT lines are key=value pairs; the table reads them by key.
lost=
echo
printf '%-9s %7s %10s %9s %9s %9s %8s %8s  %s\n' \
    backend clients reports/s p50 p99 max failed stored target
while read -r line; do
    declare -A r=()
    for pair in $line; do
        [ "$pair" = RESULT ] || r[${pair%%=*}]=${pair#*=}
    done
    rate=$(target_rate "${r[label]}")
    verdict="missed (>= $rate/s, p99 < $target_p99_ms ms)"
    if [ "${r[per_s]}" -ge "$rate" ] &&
        awk -v p="${r[p99_ms]}" -v t="$target_p99_ms" 'BEGIN { exit !(p < t) }'; then
        verdict=met
    fi
    # Every 201 (warm-up included) must be in the store; more is possible (a commit whose answer
    # was lost to a client timeout), fewer is a lost acknowledged report.
    stored_check="${r[stored]}"
    if [ "${r[stored]}" -lt "${r[created]}" ]; then
        stored_check="LOST:${r[stored]}<${r[created]}"
        lost=1
    fi
    printf '%-9s %7s %10s %7s ms %6s ms %6s ms %8s %8s  %s\n' "${r[label]}" "${r[clients]}" \
        "${r[per_s]}" "${r[p50_ms]}" "${r[p99_ms]}" "${r[max_ms]}" \
        "$((r[non_2xx] + r[errors]))" "$stored_check" "$verdict"
    unset r
done <"$INTAKE_BENCH_RESULTS"
if [ -n "$lost" ]; then
    echo "bench/intake.sh: acknowledged reports are missing from the store" >&2
    exit 1
fi
