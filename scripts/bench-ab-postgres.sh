#!/usr/bin/env bash
# Compares the write path of two builds of `roster` with the views in PostgreSQL, in one run
# (docs/benchmarks.md): for each binary given, a server on the file log and a fresh database
# of a private cluster (scripts/postgres.sh), 10,000 creates at 16 clients, then 20,000 at 64,
# then 20,000 PATCHes of displayName at 64 clients over 10,000 of those users, then 50,000 GETs by id and 50,000 `filter=userName eq` reads at 16 clients (rate and p99),
# twice: the first pass finds a cold cache (the creates leave nothing in it), the second a warm
# one;
# then the same loads against the ceiling (`roster-load ceiling`, a minimal axum server holding
# users in memory).
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
    local bin=$1 port=$2 d db pid u rate c16 c64 p64 get filter get2 filter2
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
    p64=$("$LOAD" patches --url "$u" --concurrency 64 --total 20000 --users 10000 2>&1 | rate)
    get=$(read_load get)
    filter=$(read_load filter)
    get2=$(read_load get)
    filter2=$(read_load filter)
    echo "$bin creates16=$c16 creates64=$c64 patches64=$p64 get16=$get filter16=$filter again: get16=$get2 filter16=$filter2"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
    psql "$ROSTER_TEST_PG_URL" -qc "DROP DATABASE $db"
}
ceiling() {
    local port=$1 pid u c16 c64 get filter
    "$LOAD" ceiling --listen "127.0.0.1:$port" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 50); do curl -s "127.0.0.1:$port/ServiceProviderConfig" >/dev/null && break; sleep 0.1; done
    u="http://127.0.0.1:$port"
    export ROSTER_SCIM_TOKEN=unused
    c16=$("$LOAD" creates --url "$u" --concurrency 16 --total 10000 --prefix a 2>&1 | grep -oE "= [0-9]+/s" | tr -d '=/s ')
    c64=$("$LOAD" creates --url "$u" --concurrency 64 --total 20000 --prefix b 2>&1 | grep -oE "= [0-9]+/s" | tr -d '=/s ')
    get=$(read_load get)
    filter=$(read_load filter)
    echo "ceiling creates16=$c16 creates64=$c64 get16=$get filter16=$filter"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
read_load() {
    "$LOAD" reads --url "$u" --mode "$1" --prefix a --users 10000 --concurrency 16 \
        --requests 50000 2>&1 | grep -E "/s; p50" |
        sed -E 's|.*= ([0-9]+)/s; p50 [0-9.]+ ms, p99 ([0-9.]+) ms.*|\1/s,p99=\2ms|'
}
for _ in $(seq 1 "$rounds"); do
    one "$1" 18611
    one "$2" 18612
    ceiling 18613
done
