#!/usr/bin/env bash
# Outbound provider benchmarks (docs/benchmarks.md): a fresh Roster (embedded log, memory
# views) on loopback, seeded with USERS users and GROUPS groups of 10 members through the
# `default` source; then `roster-load provider` creates a provider pointing at its fast
# in-process SCIM target, times the bootstrap full sync, and measures propagation latency of
# creates at a steady rate. Add `--store postgres` and friends in ROSTER_BENCH_SERVER_ARGS to
# run it on PostgreSQL views; `--mappings` in ROSTER_BENCH_LOAD_ARGS gives the provider three
# property mappings. ROSTER_BENCH_BIN runs another build of `roster` (an A/B pair).
#
#   bash scripts/bench-provider.sh [USERS] [GROUPS] [LATENCY_USERS] [RATE]
set -euo pipefail
# The benchmarks measure the server's capacity on one source: no per-source rate limit.
export ROSTER_SOURCE_RATE_PER_SECOND=0
cd "$(dirname "$0")/.."
users="${1:-10000}"; groups="${2:-1000}"; latency="${3:-1000}"; rate="${4:-50}"
cargo build --release --locked --bin roster --bin roster-load
work=$(mktemp -d); server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086
ROSTER_LOG=warn "${ROSTER_BENCH_BIN:-target/release/roster}" serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --admin-token bench-admin-token-0123456789abcdef ${ROSTER_BENCH_SERVER_ARGS:-} >"$work/out.txt" 2>"$work/server.log" &
server=$!
for _ in $(seq 1 300); do grep -q "SCIM token" "$work/out.txt" 2>/dev/null && break; sleep 0.1; done
token=$(awk '/SCIM token/ {print $3}' "$work/out.txt")
# shellcheck disable=SC2086
target/release/roster-load provider --server "http://127.0.0.1:$port" --admin-token bench-admin-token-0123456789abcdef \
    --token "$token" --users "$users" --groups "$groups" --latency-users "$latency" --rate "$rate" \
    ${ROSTER_BENCH_LOAD_ARGS:-}
