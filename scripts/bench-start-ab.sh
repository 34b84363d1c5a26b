#!/usr/bin/env bash
# Start-up A/B (docs/benchmarks.md, issue 16): starts BIN_A, then BIN_B, on the data
# directory D (which holds a view snapshot: start once and stop first), ROUNDS times
# alternating; prints each start's time to /readyz, the snapshot's load time and how many
# records were replayed after it. Stops each with SIGTERM (nothing changed: no new snapshot).
#   bash scripts/bench-start-ab.sh D BIN_A BIN_B [ROUNDS]
set -euo pipefail
d=$1 a=$2 b=$3 rounds=${4:-3}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
one() {
    local bin=$1 t0
    : > "$log"
    t0=$(date +%s.%N)
    "$bin" serve --data-dir "$d" --listen "127.0.0.1:$port" >> "$log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 4000); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
    local t=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
    local snap=$(grep -o 'loaded the view snapshot.*elapsed_ms=[0-9]*' "$log" | grep -o 'elapsed_ms=[0-9]*' | tail -1)
    local rep=$(grep -o 'replayed the event log.*' "$log" | tail -1 | grep -o 'entries=[0-9]*')
    echo "$bin: ready in $t s; snapshot $snap; $rep"
    kill -TERM $pid; wait $pid || true
}
for r in $(seq 1 "$rounds"); do one "$a"; one "$b"; done
