#!/usr/bin/env bash
# After a start, how soon the audit trail answers and what SCIM reads get meanwhile
# (docs/benchmarks.md, issues 14 and 16). On the data directory D (seeded by
# `roster-load seed-log --dir D ...`, whose seed.txt beside D holds the tokens; start and stop
# it once first so that it holds its snapshots), starts BIN_A, then BIN_B, ROUNDS times
# alternating; for each start prints the time to /readyz, 200,000 `userName eq` filters at 32
# clients right after /readyz, how long after /readyz an audit query is answered 200, the
# same reads 40 s after /readyz, and the resident memory. Stops each with SIGTERM.
#   bash scripts/bench-audit-start.sh D SEED_TXT USERS BIN_A BIN_B [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
d=$1 seed=$2 users=$3 a=$4 b=$5 rounds=${6:-2}
load="$root/target/release/roster-load"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
u="http://127.0.0.1:$port"
token=$(sed -n "s/^SCIM token: //p" "$seed")
admin=$(sed -n "s/^Admin token: //p" "$seed")
export ROSTER_SOURCE_RATE_PER_SECOND=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
since() { python3 -c "print(round($(date +%s.%N) - $1, 1))"; }
reads() {
    "$load" reads --url "$u/source/scim/default/v2" --token "$token" --mode filter \
        --users "$users" --concurrency 32 --requests 200000 2>&1 | grep -o "in .*"
}
one() {
    local bin=$1 t0 tr pid code
    t0=$(date +%s.%N)
    "$bin" serve --data-dir "$d" --listen "127.0.0.1:$port" >> "$log" 2>&1 &
    pid=$!
    for _ in $(seq 1 6000); do curl -sf "$u/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
    tr=$(date +%s.%N)
    echo "== $bin: ready in $(since "$t0") s"
    echo "  right after: $(reads)"
    for _ in $(seq 1 1200); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $admin" \
            "$u/admin/v1/audit/events?limit=1")
        [ "$code" = 200 ] && break
        sleep 0.25
    done
    echo "  audit answers $(since "$tr") s after /readyz"
    sleep "$(python3 -c "print(max(0, 40 - ($(date +%s.%N) - $tr)))")"
    echo "  40 s after:  $(reads)"
    echo "  RSS $(( $(awk '/VmRSS/ {print $2}' "/proc/$pid/status") / 1024 )) MiB"
    kill -TERM "$pid"; wait "$pid" || true
}
for _ in $(seq 1 "$rounds"); do one "$a"; one "$b"; done
grep -E "loaded the snapshot of the audit index" "$log" | grep -o "elapsed_ms=[0-9]*" | sed 's/^/  audit snapshot read: /'
