#!/usr/bin/env bash
# Runs the store's test suite against a throwaway PostgreSQL 15 (Debian's package, installed when
# missing): a fresh cluster in a temporary directory, listening on a free port on 127.0.0.1,
# stopped and removed on exit. Extra arguments go to `cargo test -p mta-sts-store`, e.g.
#   scripts/pg-test.sh                 # SQLite and PostgreSQL cases
#   scripts/pg-test.sh postgres::      # PostgreSQL cases only
# With PG_TEST_COMMAND set, runs that command instead of the tests (the server's URL is in
# MTA_STS_TEST_POSTGRES_URL), e.g. PG_TEST_COMMAND='cargo bench -p mta-sts-store'.
set -euo pipefail
cd "$(dirname "$0")/.."

# The newest PostgreSQL Debian installed (15 on bookworm), or nothing: a directory with pg_ctl,
# initdb and postgres. PG_LIB_DIR (default /usr/lib/postgresql) is where Debian puts them.
pg_lib_dir=${PG_LIB_DIR:-/usr/lib/postgresql}
find_pg_bin() {
    local bin found=
    for bin in "$pg_lib_dir"/*/bin; do
        if [ -x "$bin/pg_ctl" ] && [ -x "$bin/initdb" ] && [ -x "$bin/postgres" ]; then
            found+="$bin"$'\n'
        fi
    done
    printf '%s' "$found" | sort -V | tail -n 1
}
pg_bin=$(find_pg_bin)
if [ -z "$pg_bin" ]; then
    echo "== installing PostgreSQL (Debian package postgresql): none under $pg_lib_dir"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    pg_bin=$(find_pg_bin)
    if [ -z "$pg_bin" ]; then
        echo "pg-test.sh: installed the postgresql package, but $pg_lib_dir/*/bin has no" \
            "pg_ctl, initdb and postgres" >&2
        exit 1
    fi
fi

# PostgreSQL refuses to run as root: as root, run it as the package's `postgres` user.
as_server_user() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

dir=$(mktemp -d /tmp/mta-sts-pg.XXXXXX)
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
cleanup() {
    as_server_user "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
# A signal ends the script through its EXIT trap too, so the server is stopped.
trap 'exit 130' INT TERM

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=$((20000 + RANDOM % 20000))
until port_is_free "$port"; do port=$((port + 1)); done

as_server_user "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log"; exit 1; }
as_server_user "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null ||
    { cat "$dir/server.log"; exit 1; }
echo "== PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"

export MTA_STS_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
# A PostgreSQL case that finds no server fails instead of saying SKIPPED.
export MTA_STS_REQUIRE_POSTGRES=1
if [ -n "${PG_TEST_COMMAND:-}" ]; then
    bash -c "$PG_TEST_COMMAND"
else
    cargo test -p mta-sts-store "$@"
fi
