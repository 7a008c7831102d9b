#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 300), two at a time, seeded from the test fixtures.
# Needs cargo-fuzz (installed here when missing); the toolchain is stable, hence RUSTC_BOOTSTRAP.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-300}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
cargo fuzz build

seed() { mkdir -p "corpus/$1"; shift; for f in "$@"; do cp -f "$f" "corpus/$(basename "$(dirname "$f")")" 2>/dev/null || true; done; }
mkdir -p corpus/policy corpus/sts_record corpus/tlsrpt_record corpus/tlsrpt_report corpus/tlsrpt_mail corpus/netstring
printf 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n' > corpus/policy/rfc
printf 'mode: testing\nversion: STSv1\nmx: xn--bcher-kva.example\nmax_age: 86400\n\nx: y\n' > corpus/policy/quirks
printf 'v=STSv1; id=20160831085700Z;' > corpus/sts_record/rfc
printf 'v=STSv1 ;id=1; ext=a.b\0v=spf1 -all' > corpus/sts_record/rrset
printf 'v=TLSRPTv1;rua=mailto:reports@example.com' > corpus/tlsrpt_record/mailto
printf 'v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/v1?x=%%2C; e=1' > corpus/tlsrpt_record/list
printf '25:postfix [Example.COM.]:25,16:postfix .example,' > corpus/netstring/pipelined
cp -f ../crates/tlsrpt/tests/fixtures/reports/* corpus/tlsrpt_report/ 2>/dev/null || true
# Report mails, without the bombs (64 MiB each once inflated: slow seeds, nothing to learn).
find ../crates/tlsrpt/tests/fixtures/public ../crates/tlsrpt/tests/fixtures/mail \( -name '*.eml' -o -name '*.zip' \) \
    ! -name '*bomb*' -exec cp -f {} corpus/tlsrpt_mail/ \;

run() { cargo fuzz run "$1" -- -max_total_time="$seconds" -print_final_stats=1 >"fuzz-$1.log" 2>&1; echo "$1: $(grep -E 'Done|stat::number_of_executed_units' "fuzz-$1.log" | tr '\n' ' ')"; }
run policy & run sts_record & wait
run tlsrpt_record & run tlsrpt_report & wait
run tlsrpt_mail & run netstring & wait
