#!/usr/bin/env bash
# Mail and file ingest benchmark (issue 11): generates N distinct TLS report files (half
# `.json.gz`, half `.eml` report mails with a base64 gzip attachment) and ingests them with
# `mta-sts reports ingest` (release build) into a fresh SQLite store (raw bytes kept) and, in
# the same run, with parsedmarc (PyPI, in a virtualenv this script makes; `--offline`, JSON
# output only). Prints wall time, files/s and peak RSS of each and the throughput ratio; then
# ingests 5x as many files with mta-sts alone, to show that its peak memory does not grow
# with the number of files.
#
#   bench/ingest.sh                  # N=10000, then 50000 (mta-sts only)
#   N=2000 LARGE_N=10000 bench/ingest.sh
#   MTA_STS_BIN=target/debug/mta-sts N=100 LARGE_N=500 bench/ingest.sh   # try the script
#
# Targets: >= 20x parsedmarc's files/s at N; peak RSS at LARGE_N within 1.5x of that at N.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${N:-10000}
large_n=${LARGE_N:-50000}
target_ratio=20

if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "== installing python3-venv (Debian)"
    apt-get install -y -q python3 python3-venv >/dev/null
fi
if [ ! -x /usr/bin/time ]; then
    echo "== installing time (Debian)"
    apt-get install -y -q time >/dev/null
fi
venv=${CARGO_TARGET_DIR:-target}/bench-venv/parsedmarc
if [ ! -x "$venv/bin/parsedmarc" ]; then
    echo "== installing parsedmarc into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q parsedmarc
fi

# MTA_STS_BIN=target/debug/mta-sts tries the script itself quickly (the figures then mean
# nothing).
if [ -n "${MTA_STS_BIN:-}" ]; then
    mta_sts=$MTA_STS_BIN
else
    echo "== building the release binary"
    cargo build --release --quiet -p mta-sts --bin mta-sts
    mta_sts=${CARGO_TARGET_DIR:-target}/release/mta-sts
fi

work=$(mktemp -d /tmp/mta-sts-ingest-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

# N distinct reports (report-id and day differ), as Google writes them; half gzip files, half
# mails in RFC 8460 §5.3 form.
generate() {
    python3 - "$1" "$2" <<'EOF'
import base64, gzip, json, os, sys
count, out = int(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
for i in range(count):
    day = 1_704_067_200 + (i % 365) * 86400
    start = f"{day}"
    report = {
        "organization-name": f"Sender {i % 50}",
        "date-range": {"start-datetime": f"2024-01-01T00:00:00Z", "end-datetime": "2024-01-01T23:59:59Z"},
        "contact-info": "smtp-tls-reporting@sender.example",
        "report-id": f"2024-01-01T00:00:00Z_example{i}.com",
        "policies": [{
            "policy": {"policy-type": "sts", "policy-string": ["version: STSv1", "mode: testing",
                       "mx: *.example.com", "max_age: 86400"], "policy-domain": f"example{i % 500}.com",
                       "mx-host": ["*.example.com"]},
            "summary": {"total-successful-session-count": 100 + i % 7, "total-failure-session-count": i % 3},
            "failure-details": [{"result-type": "validation-failure", "sending-mta-ip": "192.0.2.1",
                                 "receiving-ip": "198.51.100.7", "receiving-mx-hostname": "mx1.example.com",
                                 "failed-session-count": i % 3}] if i % 3 else [],
        }],
    }
    body = gzip.compress(json.dumps(report).encode(), mtime=0)
    name = f"sender.example!example{i}.com!{start}!{day + 86399}!001.json.gz"
    if i % 2 == 0:
        with open(os.path.join(out, name), "wb") as f:
            f.write(body)
        continue
    b64 = base64.encodebytes(body).decode().replace("\n", "\r\n")
    mail = (
        f"From: noreply-smtp-tls-reporting@sender.example\r\nTo: tlsrpt@example{i}.com\r\n"
        f"Subject: Report Domain: example{i}.com Submitter: sender.example Report-ID: <{i}@sender.example>\r\n"
        f"Message-ID: <{i}.msg@sender.example>\r\nDate: Tue, 02 Jan 2024 01:00:00 +0000\r\n"
        f"TLS-Report-Domain: example{i}.com\r\nTLS-Report-Submitter: sender.example\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; boundary="b"; report-type=tlsrpt\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nThis is an aggregate TLS report from sender.example\r\n"
        f'--b\r\nContent-Type: application/tlsrpt+gzip; name="{name}"\r\n'
        f'Content-Disposition: attachment; filename="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        f"{b64}--b--\r\n"
    )
    with open(os.path.join(out, f"{i}.eml"), "w") as f:
        f.write(mail)
EOF
}

# Runs a command under /usr/bin/time; prints "SECONDS MAX_RSS_KIB".
measure() {
    local log=$work/time.log
    /usr/bin/time -f '%e %M' -o "$log" "$@" >"$work/out.log" 2>"$work/err.log" || {
        echo "command failed: $*" >&2
        tail -5 "$work/err.log" >&2
        return 1
    }
    cat "$log"
}

ours() {
    local files=$1 label=$2
    rm -rf "$work/data"
    read -r secs rss < <(measure "$mta_sts" reports ingest --data-dir "$work/data" --json "$files")
    local stored
    stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored"])' "$work/out.log")
    printf '%-10s %-22s %8s files %8.2f s %10.0f files/s %8.1f MiB peak RSS (%s stored)\n' >&2 \
        "$label" "mta-sts reports ingest" "$(ls "$files" | wc -l)" "$secs" \
        "$(python3 -c "print($(ls "$files" | wc -l) / max($secs, 0.01))")" \
        "$(python3 -c "print($rss / 1024)")" "$stored"
    echo "$secs $rss"
}

echo "== generating $n files"
generate "$n" "$work/files-$n"

echo "== N=$n"
read -r our_secs our_rss < <(ours "$work/files-$n" "N=$n")
mkdir -p "$work/parsedmarc-out"
# parsedmarc takes file names as arguments: xargs keeps the command line within limits, and
# one invocation per batch is what a user would run.
read -r pm_secs pm_rss < <(measure bash -c \
    "ls '$work/files-$n'/* | xargs -n 20000 '$venv/bin/parsedmarc' --offline -o '$work/parsedmarc-out' --smtp-tls-json-filename smtp_tls.json")
pm_count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$work/parsedmarc-out/smtp_tls.json" 2>/dev/null || echo "?")
printf '%-10s %-22s %8s files %8.2f s %10.0f files/s %8.1f MiB peak RSS (%s reports in its JSON)\n' \
    "N=$n" "parsedmarc --offline" "$n" "$pm_secs" "$(python3 -c "print($n / max($pm_secs, 0.01))")" \
    "$(python3 -c "print($pm_rss / 1024)")" "$pm_count"
ratio=$(python3 -c "print(f'{$pm_secs / max($our_secs, 0.001):.1f}')")
echo "throughput ratio (mta-sts / parsedmarc): ${ratio}x (target >= ${target_ratio}x)"

rm -rf "$work/files-$n" "$work/parsedmarc-out"
echo "== generating $large_n files"
generate "$large_n" "$work/files-$large_n"
echo "== N=$large_n (mta-sts only)"
read -r _ large_rss < <(ours "$work/files-$large_n" "N=$large_n")
growth=$(python3 -c "print(f'{$large_rss / max($our_rss, 1):.2f}')")
echo "peak RSS at N=$large_n / at N=$n: ${growth}x (target: flat, <= 1.5x)"
