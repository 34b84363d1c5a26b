#!/usr/bin/env bash
# Compares two builds of `roster` in one run (docs/benchmarks.md): for each binary given, a
# fresh embedded server (no per-source rate limit), 20,000 creates at 16 clients, 40,000 at 64,
# 40,000 PATCHes of displayName at 64 clients over 20,000 of those users (not against the
# ceiling, which takes no PATCH), then 100,000 GETs by id and 100,000 `filter=userName eq` reads at 32 clients, and the
# server's resident memory; then the same loads against the ceiling (`roster-load ceiling`, a
# minimal axum server holding users in memory). Alternate the binaries over several rounds:
# this machine's speed varies by 20-30% from one minute to the next.
#   bash scripts/bench-ab.sh OLD_BIN NEW_BIN [ROUNDS]
set -euo pipefail
LOAD="$(cd "$(dirname "$0")/.." && pwd)/target/release/roster-load"
rounds=${3:-3}
one() {
    local bin=$1 port=$2 d
    d=$(mktemp -d)
    ROSTER_SOURCE_RATE_PER_SECOND=0 ROSTER_LOG=warn "$bin" serve --data-dir "$d" \
        --listen "127.0.0.1:$port" >"$d/out" 2>"$d/err" &
    local pid=$!
    for _ in $(seq 1 50); do curl -s "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    export ROSTER_SCIM_TOKEN
    ROSTER_SCIM_TOKEN=$(grep "SCIM token" "$d/out" | awk '{print $3}')
    echo "$bin $(loads "http://127.0.0.1:$port/source/scim/default/v2") rss_kib=$(ps -o rss= -p "$pid")"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
}
loads() {
    local u=$1 c16 c64 p64=- get filter
    rate() { grep -oE "= [0-9]+/s" | tr -d '=/s '; }
    c16=$("$LOAD" creates --url "$u" --concurrency 16 --total 20000 --prefix seed 2>&1 | rate)
    c64=$("$LOAD" creates --url "$u" --concurrency 64 --total 40000 --prefix b 2>&1 | rate)
    if [ "$ROSTER_SCIM_TOKEN" != unused ]; then
        p64=$("$LOAD" patches --url "$u" --concurrency 64 --total 40000 --users 20000 2>&1 | rate)
    fi
    get=$("$LOAD" reads --url "$u" --mode get --users 20000 --requests 100000 2>&1 | rate)
    filter=$("$LOAD" reads --url "$u" --mode filter --users 20000 --requests 100000 2>&1 | rate)
    echo "creates16=$c16 creates64=$c64 patches64=$p64 get=$get filter=$filter"
}
ceiling() {
    local port=$1
    "$LOAD" ceiling --listen "127.0.0.1:$port" >/dev/null 2>&1 &
    local pid=$!
    for _ in $(seq 1 50); do curl -s "127.0.0.1:$port/ServiceProviderConfig" >/dev/null && break; sleep 0.1; done
    echo "ceiling $(ROSTER_SCIM_TOKEN=unused loads "http://127.0.0.1:$port") rss_kib=$(ps -o rss= -p "$pid")"
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
for _ in $(seq 1 "$rounds"); do
    one "$1" 18601
    one "$2" 18602
    ceiling 18603
done
