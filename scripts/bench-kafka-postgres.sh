#!/usr/bin/env bash
# End-to-end creates with the log in Kafka (tansu, memory storage) and the views in
# PostgreSQL, on loopback: POST /Users at 1, 16 and 64 clients, PATCH of displayName at 64
# clients, then GET by id and `filter=userName eq` at 16 clients (docs/benchmarks.md).
set -euo pipefail
# The benchmarks measure the server's capacity on one source: no per-source rate limit.
export ROSTER_SOURCE_RATE_PER_SECOND=0
cd "$(dirname "$0")/.."
. scripts/postgres.sh
TANSU="${ROSTER_TEST_TANSU:-$HOME/.cache/roster/tansu-0.6.0/bin/tansu}"
cargo build --release --locked --bin roster --bin roster-load
work=$(mktemp -d); pg_dir=$(mktemp -d)
server=""; broker=""
cleanup() {
    for p in $server $broker; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    stop_postgres
    rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT
start_postgres "$pg_dir"
psql "$ROSTER_TEST_PG_URL" -qc "CREATE DATABASE bench"
url="${ROSTER_TEST_PG_URL%/*}/bench"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
kport=$(free_port)
(cd "$work" && exec "$TANSU" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$kport" --advertised-listener-url "tcp://127.0.0.1:$kport" \
    >"$work/tansu.log" 2>&1) &
broker=$!
port=$(free_port)
ROSTER_LOG=warn target/release/roster serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --log kafka --kafka-brokers "127.0.0.1:$kport" --kafka-topic bench \
    --store postgres --postgres-url "$url" >"$work/out.txt" 2>"$work/server.log" &
server=$!
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.5; done
token=$(sed -n 's/^  SCIM token: *//p' "$work/out.txt")
scim="http://127.0.0.1:$port/source/scim/default/v2"
target/release/roster-load creates --url "$scim" --token "$token" --concurrency 1 --total 2000 --prefix o
target/release/roster-load creates --url "$scim" --token "$token" --concurrency 16 --total 20000 --prefix a
target/release/roster-load creates --url "$scim" --token "$token" --concurrency 64 --total 40000 --prefix b
target/release/roster-load patches --url "$scim" --token "$token" --concurrency 64 --total 40000 --users 20000
# Twice: the creates leave nothing in the cache; the second pass finds it warm.
for mode in get filter get filter; do
    target/release/roster-load reads --url "$scim" --token "$token" --mode "$mode" \
        --prefix a --users 20000 --concurrency 16 --requests 100000
done
