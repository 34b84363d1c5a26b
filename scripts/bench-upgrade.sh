#!/usr/bin/env bash
# Upgrading a populated PostgreSQL database (docs/benchmarks.md): a private PostgreSQL cluster,
# the views of DATA_DIR folded into it by OLD (a build of an earlier version), then NEW started
# on the same database, timed until /readyz answers, with the migrations it applied and their
# time from its log. Prints the audit rows and the kept counts before and after.
#   bash scripts/bench-upgrade.sh OLD NEW DATA_DIR
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
old=$1 new=$2 d=$3
. "$root/scripts/postgres.sh"
pg_dir=$(mktemp -d)
logs=$(mktemp -d)
start_postgres "$pg_dir"
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    stop_postgres
    rm -rf "$pg_dir" "$logs"
}
trap cleanup EXIT
psql "$ROSTER_TEST_PG_URL" -qc "CREATE DATABASE bench"
url="${ROSTER_TEST_PG_URL%/*}/bench"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Serves until ready, then stops; prints the seconds it took to be ready.
serve() {
    local started
    started=$(date +%s.%N)
    "$1" serve --data-dir "$d" --listen "127.0.0.1:$port" --store postgres --postgres-url "$url" \
        > "$2" 2>&1 &
    pid=$!
    for _ in $(seq 1 6000); do
        curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$2"; exit 1; }
    echo "$(date +%s.%N) - $started" | bc
    kill "$pid"
    wait "$pid" || true
    pid=
}
state() {
    psql "$url" -Atc "SELECT 'audit rows', count(*) FROM audit_events"
    psql "$url" -Atc "SELECT 'count', kind, owner, n FROM view_counts ORDER BY 2, 3"
}
echo "== $old: folded and ready after $(serve "$old" "$logs/old.log") s"
state
echo "== $new: ready after $(serve "$new" "$logs/new.log") s"
grep "applied a PostgreSQL migration" "$logs/new.log" | sed 's/.*migration=/applied /'
# From the first line the new build logged to the last migration it applied.
python3 - "$logs/new.log" <<'PY'
import re, sys, datetime
lines = [l for l in open(sys.argv[1]) if re.match(r"\d{4}-\d\d-\d\dT", l)]
at = lambda l: datetime.datetime.fromisoformat(l.split()[0].rstrip("Z")[:26])
applied = [l for l in lines if "applied a PostgreSQL migration" in l]
if applied:
    print(f"migrations took {(at(applied[-1]) - at(lines[0])).total_seconds():.1f} s")
PY
grep -o 'replayed the event log.*' "$logs/new.log" || true
state
