#!/usr/bin/env bash
# What an inbound property mapping costs (docs/benchmarks.md, issue 15): for each round, a
# fresh embedded server (no per-source rate limit) takes 20,000 creates at 16 clients as sent,
# then another fresh one whose source runs one mapping (the userName in lower case and the
# displayName built from the name, so that every create is reshaped and its request kept in
# a user.mapped event). Rounds alternate: this machine's speed varies by 20-30% from one
# minute to the next.
#   bash scripts/bench-source-mappings.sh BIN [ROUNDS]
set -euo pipefail
LOAD="$(cd "$(dirname "$0")/.." && pwd)/target/release/roster-load"
bin=$1 rounds=${2:-3} port=18621
# shellcheck source=scripts/bench-mapping.sh
. "$(dirname "$0")/bench-mapping.sh"
one() {
    local mapped=$1 d
    d=$(mktemp -d)
    ROSTER_SOURCE_RATE_PER_SECOND=0 ROSTER_LOG=warn "$bin" serve --data-dir "$d" \
        --listen "127.0.0.1:$port" >"$d/out" 2>"$d/err" &
    local pid=$!
    for _ in $(seq 1 50); do curl -s "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    local scim admin
    scim=$(grep "SCIM token" "$d/out" | awk '{print $3}')
    admin=$(grep "Admin token" "$d/out" | awk '{print $3}')
    if [ "$mapped" = yes ]; then set_source_mapping "127.0.0.1:$port" "$admin"; fi
    local rate
    rate=$(ROSTER_SCIM_TOKEN=$scim "$LOAD" creates --url "http://127.0.0.1:$port/source/scim/default/v2" \
        --concurrency 16 --total 20000 --prefix Seed 2>&1 | grep -oE "= [0-9]+/s" | tr -d '=/s ')
    echo "mapping=$mapped creates16=$rate"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
}
for _ in $(seq 1 "$rounds"); do
    one no
    one yes
done
