#!/usr/bin/env bash
# SCIM requests while another client sends requests that walk a whole history or directory
# (docs/benchmarks.md; ADR 0025 and 0026). For each build in turn, ROUNDS times: serve data
# directory D (seeded with `roster-load seed-log --dir D --users USERS`), wait for /readyz and
# 12 s more (the audit index's snapshot), then
#   1. 100,000 `userName eq` reads at 16 clients alone;
#   2. 200,000 while one admin sends 40 audit searches no list narrows (`client.ip eq`);
#   3. 150,000 while one SCIM client sends 6 lists no index answers (`title eq "x"`);
#   4. 20,000 creates at 16 clients alone, then 20,000 while 4 such lists run;
# printing each run's rate and latencies (the worst request shows what the walks hold up) and
# the walks' times. The creates stay in D's log.
#   bash scripts/bench-stalls.sh D USERS ADMIN_TOKEN SCIM_TOKEN BIN_A BIN_B [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
d=$1 users=$2 admin=$3 token=$4 a=$5 b=$6 rounds=${7:-2}
load="$root/target/release/roster-load"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
times=$(mktemp)
pid=""
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -f "$times"' EXIT
export ROSTER_SOURCE_RATE_PER_SECOND=0
root_url="http://127.0.0.1:$port"
u="$root_url/source/scim/default/v2"
# Sends `n` GETs of `url` with `bearer`, one after the other, their times into $times.
walks() {
    local n=$1 bearer=$2 url=$3
    for _ in $(seq 1 "$n"); do
        curl -s -o /dev/null -w "%{time_total}\n" -H "Authorization: Bearer $bearer" "$url"
    done > "$times"
}
# Runs a load (the rest of the arguments) while `walks n bearer url` runs.
during() {
    local label=$1 n=$2 bearer=$3 url=$4; shift 4
    walks "$n" "$bearer" "$url" &
    local w=$!
    "$@" | tail -1 | sed "s/^/$label: /"
    wait "$w"
    echo "  walks (s): $(sort -n "$times" | tr '\n' ' ')"
}
one() {
    "$1" serve --data-dir "$d" --listen "127.0.0.1:$port" > /dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 600); do curl -sf "$root_url/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 12
    local reads=("$load" reads --url "$u" --token "$token" --mode filter --users "$users" --concurrency 16)
    local search="$root_url/admin/v1/audit/events?filter=client.ip%20eq%20%221.2.3.4%22"
    local list="$u/Users?filter=title%20eq%20%22x%22&count=5"
    "${reads[@]}" --requests 100000 | tail -1 | sed 's/^/reads alone: /'
    during "reads with audit searches" 40 "$admin" "$search" "${reads[@]}" --requests 200000
    during "reads with list walks" 6 "$token" "$list" "${reads[@]}" --requests 150000
    local creates=("$load" creates --url "$u" --token "$token" --concurrency 16 --total 20000)
    "${creates[@]}" --prefix "walk-a$RANDOM$RANDOM" | tail -1 | sed 's/^/creates alone: /'
    during "creates with list walks" 4 "$token" "$list" "${creates[@]}" --prefix "walk-b$RANDOM$RANDOM"
    kill -TERM "$pid"; wait "$pid" || true; pid=""
}
for r in $(seq 1 "$rounds"); do
    for bin in "$a" "$b"; do
        echo "== round $r: $bin"
        one "$bin"
    done
done
