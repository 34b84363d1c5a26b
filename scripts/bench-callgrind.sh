#!/usr/bin/env bash
# Counts the CPU instructions a `roster` build spends on a fixed load (docs/benchmarks.md):
# the server under callgrind, 2,000 creates at 8 clients, then, by MODE, 4,000 reads by id
# (`gets`), 4,000 `filter=userName eq` reads (`filters`), 4,000 PATCHes of displayName
# (`patches`) or none (`creates`). Instruction
# counts vary by under 1% from run to run (wall-clock figures by 20-30% here), so two builds
# can be compared by them. Needs valgrind (Debian `valgrind`). With ROSTER_BENCH_MAPPING=1 the
# source runs a mapping that reshapes every user (scripts/bench-mapping.sh).
#   bash scripts/bench-callgrind.sh BIN MODE [OUT]
# prints the total; OUT (default: a temporary file) keeps the profile for callgrind_annotate.
set -euo pipefail
bin=$1 mode=$2 port=18810
LOAD="$(cd "$(dirname "$0")/.." && pwd)/target/release/roster-load"
d=$(mktemp -d)
out=${3:-$d/callgrind.out}
trap 'rm -rf "$d"' EXIT
ROSTER_SOURCE_RATE_PER_SECOND=0 ROSTER_LOG=warn valgrind --tool=callgrind \
    --callgrind-out-file="$out" "$bin" serve --data-dir "$d/data" \
    --listen "127.0.0.1:$port" >"$d/stdout" 2>"$d/stderr" &
pid=$!
for _ in $(seq 1 300); do curl -s "127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
export ROSTER_SCIM_TOKEN
ROSTER_SCIM_TOKEN=$(grep "SCIM token" "$d/stdout" | awk '{print $3}')
if [ -n "${ROSTER_BENCH_MAPPING:-}" ]; then
    # shellcheck source=scripts/bench-mapping.sh
    . "$(dirname "$0")/bench-mapping.sh"
    set_source_mapping "127.0.0.1:$port" "$(grep "Admin token" "$d/stdout" | awk '{print $3}')"
fi
u="http://127.0.0.1:$port/source/scim/default/v2"
"$LOAD" creates --url "$u" --concurrency 8 --total 2000 --prefix seed >/dev/null
case $mode in
    gets) "$LOAD" reads --url "$u" --mode get --users 2000 --requests 4000 --concurrency 8 >/dev/null ;;
    filters) "$LOAD" reads --url "$u" --mode filter --users 2000 --requests 4000 --concurrency 8 >/dev/null ;;
    patches) "$LOAD" patches --url "$u" --users 2000 --total 4000 --concurrency 8 >/dev/null ;;
    creates) ;;
    *) echo "MODE is gets, filters, patches or creates" >&2; kill "$pid"; exit 2 ;;
esac
kill -INT "$pid"
wait "$pid" 2>/dev/null || true
echo "$mode: $(grep -E '^summary' "$out" | awk '{print $2}') instructions"
