#!/usr/bin/env bash
# Two replicas of one deployment writing one directory at once: the log in Kafka (tansu,
# memory storage) and the views in PostgreSQL, shared; each replica gets its own clients
# (roster-load replicas). Prints, per replica, the writes acknowledged, the 503 answers and
# the latency percentiles (docs/benchmarks.md, "Two replicas"). First, for comparison in the
# same run, one replica alone with as many clients as the two get together.
#   scripts/bench-replicas.sh [clients per replica] [seconds]
# ROSTER_CONFIG (a settings file, e.g. with [kafka_properties]) is passed to both replicas.
set -euo pipefail
export ROSTER_SOURCE_RATE_PER_SECOND=0
cd "$(dirname "$0")/.."
. scripts/postgres.sh
clients="${1:-8}"
seconds="${2:-30}"
TANSU="${ROSTER_TEST_TANSU:-$HOME/.cache/roster/tansu-0.6.0/bin/tansu}"
cargo build --release --locked --bin roster --bin roster-load
work=$(mktemp -d); pg_dir=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
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
pids="$!"
start_replica() { # name port
    ROSTER_LOG=warn target/release/roster serve --listen "127.0.0.1:$2" --data-dir "$work/$1" \
        --log kafka --kafka-brokers "127.0.0.1:$kport" --kafka-topic bench \
        --store postgres --postgres-url "$url" >"$work/$1.out" 2>"$work/$1.log" &
    pids="$pids $!"
    until curl -sf "http://127.0.0.1:$2/readyz" >/dev/null; do sleep 0.5; done
}
a=$(free_port); b=$(free_port)
start_replica a "$a"
token=$(sed -n 's/^  SCIM token: *//p' "$work/a.out")
echo "== one replica, $((2 * clients)) clients, $seconds s"
target/release/roster-load replicas --token "$token" --clients "$((2 * clients))" \
    --seconds "$seconds" --prefix one --url "http://127.0.0.1:$a/source/scim/default/v2"
# The replicas share the key that seals secrets.
mkdir -p "$work/b" && chmod 700 "$work/b" && cp -p "$work/a/secret.key" "$work/b/"
start_replica b "$b"
echo "== two replicas, $clients clients each, $seconds s"
target/release/roster-load replicas --token "$token" --clients "$clients" --seconds "$seconds" \
    --url "http://127.0.0.1:$a/source/scim/default/v2" \
    --url "http://127.0.0.1:$b/source/scim/default/v2"
for r in a b; do
    port=$a; [ "$r" = b ] && port=$b
    echo "$r: $(curl -s "http://127.0.0.1:$port/metrics" | grep -E '^roster_write_(lost_races|give_ways)_total' | tr '\n' ' ')"
done
