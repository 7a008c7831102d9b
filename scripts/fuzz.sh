#!/usr/bin/env bash
# Builds and runs every fuzz target (`cargo fuzz list`: a target added to fuzz/Cargo.toml is
# run with no change here) for SECONDS each, two at a time, each corpus seeded from the
# project's fixtures. Prints each target's executions and result; exits 1 when a target fails
# to build, crashes, leaks, hangs or runs out of memory (the input is in fuzz/artifacts/TARGET/,
# the log in fuzz/fuzz-TARGET.log).
#
#   bash scripts/fuzz.sh                  # every target, 300 s each
#   bash scripts/fuzz.sh 20               # the CI smoke run
#   bash scripts/fuzz.sh 600 policy       # some targets only
#   FUZZ_PROFILE=dev bash scripts/fuzz.sh 20   # unoptimised build: a few times quicker to
#                                              # build, slower to run (the CI smoke run)
#
# Needs cargo-fuzz (installed here when missing); the toolchain is stable, hence RUSTC_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-300}
[ $# -eq 0 ] || shift
case $seconds in
    '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
export RUSTC_BOOTSTRAP=1

# release (the default: optimised, with debug assertions) or dev.
case ${FUZZ_PROFILE:-release} in
    release) profile=() ;;
    dev) profile=(--dev) ;;
    *) echo "fuzz.sh: FUZZ_PROFILE is release or dev, not '$FUZZ_PROFILE'" >&2; exit 2 ;;
esac

echo "== cargo fuzz build ${profile[*]}"
cargo fuzz build "${profile[@]}"
if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: cargo fuzz list found no target" >&2; exit 1; }

# Seeds: fuzz/seeds/TARGET/* (small inputs written for the target), plus the project's fixtures
# of the same kind of input, listed here.
fixtures() {
    case $1 in
        tlsrpt_report) echo ../crates/tlsrpt/tests/fixtures/{reports,regressions,public} ;;
        tlsrpt_mail) echo ../crates/tlsrpt/tests/fixtures/{mail,mail-regressions,public} ;;
        tlsrpt_datagram) echo ../crates/sender/tests/fixtures/datagrams ;;
    esac
}
seed() {
    local target=$1 dir
    mkdir -p "corpus/$target"
    for dir in "seeds/$target" $(fixtures "$target"); do
        [ -d "$dir" ] || continue
        # Not the bombs (64 MiB each once inflated: slow seeds, nothing to learn).
        find "$dir" -maxdepth 1 -type f ! -name README.md ! -name '*.py' ! -name '*bomb*' \
            -exec cp -f {} "corpus/$target/" \;
    done
}

# One target: its executions and result from libFuzzer's final stats; the exit status is
# cargo fuzz's (non-zero on a crash, leak, timeout or out-of-memory).
run() {
    local target=$1 log=fuzz-$1.log
    cargo fuzz run "${profile[@]}" "$target" "corpus/$target" -- -max_total_time="$seconds" -timeout=30 \
        -print_final_stats=1 >"$log" 2>&1
}
report() {
    local target=$1 status=$2 log=fuzz-$1.log execs result
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ "$status" = 0 ]; then
        result=ok
    else
        result="FAILED (exit $status): $(grep -m 1 -E '^==[0-9]+==|^SUMMARY|panicked at|Test unit written' "$log" || echo "see fuzz/$log")"
    fi
    printf '%-24s %12s executions  %s\n' "$target" "${execs:-0}" "$result"
    if [ "$status" != 0 ]; then
        grep -E 'Test unit written|^Base64' "$log" | sed 's/^/    /' || true
    fi
}

failed=0
parallel=2
for ((i = 0; i < ${#targets[@]}; i += parallel)); do
    batch=("${targets[@]:i:parallel}")
    pids=()
    for target in "${batch[@]}"; do
        seed "$target"
        run "$target" &
        pids+=($!)
    done
    for j in "${!batch[@]}"; do
        status=0
        wait "${pids[j]}" || status=$?
        report "${batch[j]}" "$status"
        [ "$status" = 0 ] || failed=1
    done
done
if [ "$failed" != 0 ]; then
    echo "fuzz.sh: a fuzz target failed (inputs in fuzz/artifacts/, logs in fuzz/fuzz-*.log)" >&2
fi
exit "$failed"
