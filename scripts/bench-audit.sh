#!/usr/bin/env bash
# The audit trail at scale (docs/benchmarks.md): seeds a data directory with N users through
# the real write path (each create with its own request id and a client, as SCIM requests
# leave them), then times reads, export and verify in process (`roster-load audit`) twice:
# over the index in memory built from the log, and over the audit projection a rebuild loads
# into an empty PostgreSQL database (a private cluster, scripts/postgres.sh).
#   bash scripts/bench-audit.sh [USERS] [SAMPLES]
set -euo pipefail
users=${1:-1000000} samples=${2:-200}
root="$(cd "$(dirname "$0")/.." && pwd)"
. "$root/scripts/postgres.sh"
load="$root/target/release/roster-load"
d=$(mktemp -d) pg_dir=$(mktemp -d)
cleanup() { stop_postgres; rm -rf "$d" "$pg_dir"; }
trap cleanup EXIT
"$load" seed-log --dir "$d" --users "$users" | grep -v token
echo "== in memory"
"$load" audit --dir "$d" --samples "$samples"
echo "== in PostgreSQL"
start_postgres "$pg_dir"
psql "$ROSTER_TEST_PG_URL" -qc "CREATE DATABASE bench"
"$load" audit --dir "$d" --samples "$samples" --postgres-url "${ROSTER_TEST_PG_URL%/*}/bench"
