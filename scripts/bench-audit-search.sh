#!/usr/bin/env bash
# SCIM reads while an admin repeats an audit search that no list narrows (docs/benchmarks.md,
# ADR 0025). For each build in turn, ROUNDS times: serve data directory D (seeded with
# `roster-load seed-log --dir D --users USERS`), wait for /readyz and 12 s more (the audit
# index's snapshot), then 100,000 `userName eq` reads at 16 clients alone, then 200,000 while one
# admin sends 40 `client.ip eq` searches one after the other; prints both runs' rate and
# latencies (the worst request is what a search holding a worker shows) and the searches' times.
#   bash scripts/bench-audit-search.sh D USERS ADMIN_TOKEN SCIM_TOKEN BIN_A BIN_B [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
d=$1 users=$2 admin=$3 token=$4 a=$5 b=$6 rounds=${7:-2}
load="$root/target/release/roster-load"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
times=$(mktemp)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -f "$times"' EXIT
export ROSTER_SOURCE_RATE_PER_SECOND=0
one() {
    "$1" serve --data-dir "$d" --listen "127.0.0.1:$port" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 12
    local u="http://127.0.0.1:$port/source/scim/default/v2"
    "$load" reads --url "$u" --token "$token" --mode filter --users "$users" --concurrency 16 --requests 100000 | tail -1 | sed 's/^/alone: /'
    (for _ in $(seq 1 40); do
        curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $admin" \
            "http://127.0.0.1:$port/admin/v1/audit/events?filter=client.ip%20eq%20%221.2.3.4%22"
    done > "$times") &
    local searches=$!
    "$load" reads --url "$u" --token "$token" --mode filter --users "$users" --concurrency 16 --requests 200000 | tail -1 | sed 's/^/with searches: /'
    wait "$searches"
    echo "searches (s): $(sort -n "$times" | awk '{t[NR]=$1} END {print "min", t[1], "median", t[int((NR+1)/2)], "max", t[NR]}')"
    kill -TERM "$pid"; wait "$pid" || true; pid=""
}
for r in $(seq 1 "$rounds"); do
    for bin in "$a" "$b"; do
        echo "== round $r: $bin"
        one "$bin"
    done
done
