#!/usr/bin/env bash
# Compares the write path of two builds of `roster` with the views in PostgreSQL, in one run
# (docs/benchmarks.md): for each binary given, a server on the file log and a fresh database
# of a private cluster (scripts/postgres.sh), 10,000 creates at 16 clients, then 20,000 at 64.
# Alternate the binaries over several rounds: this machine's speed varies by 20-30% from one
# minute to the next.
#   bash scripts/bench-ab-postgres.sh OLD_BIN NEW_BIN [ROUNDS]
set -euo pipefail
export ROSTER_SOURCE_RATE_PER_SECOND=0
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/postgres.sh"
LOAD="$root/target/release/roster-load"
rounds=${3:-3}
pg_dir=$(mktemp -d)
trap 'stop_postgres; rm -rf "$pg_dir"' EXIT
start_postgres "$pg_dir"
n=0
one() {
    local bin=$1 port=$2 d db pid u rate c16 c64
    n=$((n + 1)); db="ab$n"
    psql "$ROSTER_TEST_PG_URL" -qc "CREATE DATABASE $db"
    d=$(mktemp -d)
    ROSTER_LOG=warn "$bin" serve --data-dir "$d" --listen "127.0.0.1:$port" \
        --store postgres --postgres-url "${ROSTER_TEST_PG_URL%/*}/$db" >"$d/out" 2>"$d/err" &
    pid=$!
    for _ in $(seq 1 100); do curl -s "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    export ROSTER_SCIM_TOKEN
    ROSTER_SCIM_TOKEN=$(grep "SCIM token" "$d/out" | awk '{print $3}')
    u="http://127.0.0.1:$port/source/scim/default/v2"
    rate() { grep -oE "= [0-9]+/s" | tr -d '=/s '; }
    c16=$("$LOAD" creates --url "$u" --concurrency 16 --total 10000 --prefix a 2>&1 | rate)
    c64=$("$LOAD" creates --url "$u" --concurrency 64 --total 20000 --prefix b 2>&1 | rate)
    echo "$bin creates16=$c16 creates64=$c64"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
    psql "$ROSTER_TEST_PG_URL" -qc "DROP DATABASE $db"
}
for _ in $(seq 1 "$rounds"); do
    one "$1" 18611
    one "$2" 18612
done
