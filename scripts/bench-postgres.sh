#!/usr/bin/env bash
# The PostgreSQL benchmarks of docs/benchmarks.md, on loopback:
#   1. seeds a log with USERS users and NGROUPS groups of MEMBERS members each, through the
#      real write path (roster-load seed-log);
#   2. rebuilds the views from that log into an empty PostgreSQL database (roster-load replay
#      --postgres-url: fold in memory, bulk load, indexes, swap): the rebuild rate; with
#      BENCH_INCREMENTAL=1 also folds it batch by batch into a second database (what a live
#      projector does when it catches up);
#   3. serves it (`roster serve --store postgres`) and measures `filter=userName eq` and the
#      members filter (`members[value eq "<user id>"]`) at 16 clients;
#   4. runs `roster rebuild` on the serving process (a new generation, then the swap).
# Usage: bash scripts/bench-postgres.sh [USERS] [NGROUPS] [MEMBERS]
set -euo pipefail
# The benchmarks measure the server's capacity on one source: no per-source rate limit.
export ROSTER_SOURCE_RATE_PER_SECOND=0
cd "$(dirname "$0")/.."
. scripts/postgres.sh
USERS=${1:-1000000}
NGROUPS=${2:-10000}
MEMBERS=${3:-100}
cargo build --release --locked --bin roster --bin roster-load
work=$(mktemp -d); pg_dir=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
    stop_postgres
    rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT
start_postgres "$pg_dir"
psql "$ROSTER_TEST_PG_URL" -qc "CREATE DATABASE bench"
url="${ROSTER_TEST_PG_URL%/*}/bench"

echo "== seeding $USERS users and $NGROUPS groups of $MEMBERS members"
target/release/roster-load seed-log --dir "$work/data" --users "$USERS" \
    --groups "$NGROUPS" --members "$MEMBERS" | tee "$work/seed.txt"
token=$(sed -n 's/^SCIM token: //p' "$work/seed.txt")
admin=$(sed -n 's/^Admin token: //p' "$work/seed.txt")
# Write the seeded log back to disk now, so that the kernel does not do it during the rebuild.
sync

echo "== rebuilding the views from the log into PostgreSQL (rebuild rate)"
ROSTER_LOG=info target/release/roster-load replay --dir "$work/data" --postgres-url "$url"
if [ "${BENCH_INCREMENTAL:-0}" = 1 ]; then
    echo "== folding the log batch by batch into a second database (incremental fold rate)"
    psql "$ROSTER_TEST_PG_URL" -qc "CREATE DATABASE incremental"
    target/release/roster-load replay --dir "$work/data" --incremental \
        --postgres-url "${ROSTER_TEST_PG_URL%/*}/incremental"
    psql "$ROSTER_TEST_PG_URL" -qc "DROP DATABASE incremental"
fi
# What autovacuum would do within minutes after a bulk load (and would otherwise do during the
# reads): statistics for the planner and the visibility map.
psql "$url" -qc "VACUUM ANALYZE"
# And what the next checkpoint would do during the reads: write the loaded pages back.
psql "$url" -qc "CHECKPOINT"
psql "$url" -qAtc "SELECT 'views: ' || pg_size_pretty(sum(pg_total_relation_size(c.oid))) \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') \
    AND c.relname ~ ('_g' || (SELECT active FROM roster_generation) || '$')"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ROSTER_LOG=warn,roster::rebuild=info,roster_projections::pg::bulk=info \
    target/release/roster serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
    --store postgres --postgres-url "$url" >"$work/server.log" 2>&1 &
server=$!
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.5; done
scim="http://127.0.0.1:$port/source/scim/default/v2"

echo "== reads"
for c in 1 16; do
    for mode in filter members; do
        target/release/roster-load reads --url "$scim" --token "$token" --mode "$mode" \
            --users "$USERS" --concurrency "$c" --requests $((c == 1 ? 5000 : 40000))
    done
done
psql "$url" -c "EXPLAIN (ANALYZE, COSTS OFF) SELECT u.id FROM users u \
    WHERE u.gen = (SELECT active FROM roster_generation) AND u.directory = 'default' \
    AND u.user_name_ci COLLATE \"C\" = 'seed-4242@example.com' ORDER BY u.id LIMIT 100"
psql "$url" -c "EXPLAIN (ANALYZE, COSTS OFF) SELECT g.id FROM groups g \
    WHERE g.gen = (SELECT active FROM roster_generation) AND g.directory = 'default' \
    AND EXISTS (SELECT 1 FROM group_members m WHERE m.gen = g.gen AND m.directory = g.directory \
    AND m.group_id = g.id AND m.member_id = (SELECT id FROM users OFFSET 4242 LIMIT 1)) \
    ORDER BY g.id LIMIT 100"

echo "== roster rebuild on the serving process"
ROSTER_ADMIN_TOKEN="$admin" target/release/roster rebuild --wait --server "http://127.0.0.1:$port" | tail -1
grep -E "rebuild|bulk load" "$work/server.log" | sed 's/\x1b\[[0-9;]*m//g'
