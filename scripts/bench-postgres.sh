#!/usr/bin/env bash
# The PostgreSQL benchmarks of docs/benchmarks.md, on loopback:
#   1. seeds a log with USERS users and NGROUPS groups of MEMBERS members each, through the
#      real write path (roster-load seed-log);
#   2. folds that log into an empty PostgreSQL database (roster-load replay --postgres-url):
#      the rate of a rebuild from position 0;
#   3. serves it (`roster serve --store postgres`) and measures `filter=userName eq` and the
#      members filter (`members[value eq "<user id>"]`) at 16 clients;
#   4. runs `roster rebuild` on the serving process (a new generation, then the swap).
# Usage: bash scripts/bench-postgres.sh [USERS] [NGROUPS] [MEMBERS]
set -euo pipefail
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

echo "== folding the log into PostgreSQL (rebuild rate)"
target/release/roster-load replay --dir "$work/data" --postgres-url "$url"
# What autovacuum would do within minutes after a bulk load (and would otherwise do during the
# reads): statistics for the planner and the visibility map.
psql "$url" -qc "VACUUM ANALYZE"
psql "$url" -qAtc "SELECT 'views: ' || pg_size_pretty(sum(pg_total_relation_size(c.oid))) \
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i') AND c.relname ~ '_g1'"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ROSTER_LOG=warn target/release/roster serve --listen "127.0.0.1:$port" --data-dir "$work/data" \
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
ROSTER_ADMIN_TOKEN="$admin" target/release/roster rebuild --server "http://127.0.0.1:$port" | tail -1
