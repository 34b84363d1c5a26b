#!/usr/bin/env bash
# The console's pages at scale (docs/benchmarks.md, issue 19): seeds a data directory with
# USERS users and GROUPS groups of 10 members through the real write path, starts Roster on it
# (embedded: file log, views in memory), signs in to the console with curl, and times each
# page ROUNDS times in a row (curl's total time on loopback: the server's time to render and
# send the page, plus a loopback round trip). Prints each page's median and slowest time.
#   bash scripts/bench-console.sh [BIN] [USERS] [GROUPS] [ROUNDS]
# With BENCH_DIR set, the seeded data directory is kept there and reused by the next run (to
# compare two builds on one directory); else it is a temporary one, deleted at the end. With
# STORE=postgres the views are in a private PostgreSQL cluster (scripts/postgres.sh), folded
# from the log before the pages are timed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin=${1:-$root/target/release/roster} users=${2:-1000000} groups=${3:-1000} rounds=${4:-30}
load="$(dirname "$bin")/roster-load"
d=${BENCH_DIR:-$(mktemp -d)}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
store=()
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null
    if [ -n "${pg_dir:-}" ]; then stop_postgres; rm -rf "$pg_dir"; fi
    [ -n "${BENCH_DIR:-}" ] || rm -rf "$d"
}
trap cleanup EXIT
if [ "${STORE:-memory}" = postgres ]; then
    . "$root/scripts/postgres.sh"
    pg_dir=$(mktemp -d)
    start_postgres "$pg_dir"
    psql "$ROSTER_TEST_PG_URL" -qc "CREATE DATABASE bench"
    store=(--store postgres --postgres-url "${ROSTER_TEST_PG_URL%/*}/bench")
fi
if [ -s "$d/seed.txt" ]; then
    echo "== reusing $d"
else
    echo "== seeding $users users and $groups groups"
    mkdir -p "$d"
    "$load" seed-log --dir "$d" --users "$users" --groups "$groups" --members 10 > "$d/seed.txt"
fi
admin=$(sed -n 's/^Admin token: //p' "$d/seed.txt")
started=$(date +%s)
"$bin" serve --data-dir "$d" --listen "127.0.0.1:$port" "${store[@]}" > "$d/serve.log" 2>&1 &
pid=$!
u="http://127.0.0.1:$port"
for _ in $(seq 1 2400); do
    curl -sf "$u/readyz" >/dev/null 2>&1 && break
    sleep 0.5
done
curl -sf "$u/readyz" >/dev/null || { cat "$d/serve.log"; exit 1; }
echo "== ready after $(($(date +%s) - started)) s"
cookie=$(curl -s -o /dev/null -D - -H "Origin: $u" --data-urlencode "token=$admin" \
    "$u/console/sign-in" | sed -n 's/^set-cookie: \(roster_console=[^;]*\).*/\1/ip')
[ -n "$cookie" ] || { echo "sign-in failed"; exit 1; }
# The id of the first event of TYPE's target; the audit index may still be catching up with
# the log just after start (503), so asked again for up to two minutes.
first_id() {
    for _ in $(seq 1 240); do
        if id=$(curl -sf -H "Authorization: Bearer $admin" \
            "$u/admin/v1/audit/events?limit=1&filter=type%20eq%20%22$1%22" \
            | python3 -c 'import json,sys; e=json.load(sys.stdin)["events"]; print(e[0]["target"]["id"] if e else "")' 2>/dev/null); then
            echo "$id"; return
        fi
        sleep 0.5
    done
    echo "the audit trail did not answer" >&2; exit 1
}
user=$(first_id user.created)
group=$(first_id group.created)
time_page() {
    local name=$1 path=$2
    local times
    times=$(for _ in $(seq 1 "$rounds"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' -H "Cookie: $cookie" "$u$path"
    done)
    if echo "$times" | grep -qv '^200 '; then
        echo "$name: not 200: $(echo "$times" | grep -v '^200 ' | head -1)"; return
    fi
    echo "$times" | awk -v n="$name" '{print $2*1000}' | sort -n | awk -v n="$name" \
        '{a[NR]=$1} END {printf "%-34s median %7.1f ms   slowest %7.1f ms\n", n, a[int((NR+1)/2)], a[NR]}'
}
echo "== $rounds requests a page, one at a time"
time_page "overview" "/console/"
time_page "sources" "/console/sources"
time_page "users (first page)" "/console/users"
time_page "users (page 100)" "/console/users?page=100"
time_page "users, filter userName eq" "/console/users?filter=userName%20eq%20%22seed-4242%40example.com%22"
# The search box: names that start with the text (ordered indexes), matching 111, 11,111,
# 111,111 and every user (each displayName is "User <n>"); then a `co` filter, which reads all.
time_page "users, search 'seed-4242'" "/console/users?q=seed-4242"
time_page "users, search 'seed-42'" "/console/users?q=seed-42"
time_page "users, search 'seed-4'" "/console/users?q=seed-4"
time_page "users, search 'user' (all)" "/console/users?q=user"
time_page "users, filter userName co" "/console/users?filter=userName%20co%20%224242%22"
time_page "groups, search 'group-42'" "/console/groups?q=group-42"
time_page "user" "/console/users/$user"
time_page "groups (first page)" "/console/groups"
[ -n "$group" ] && time_page "group" "/console/groups/$group"
time_page "providers" "/console/providers"
time_page "mappings" "/console/mappings"
time_page "audit (newest first)" "/console/audit"
time_page "audit, filter by resource" "/console/audit?filter=resource.id%20eq%20%22$user%22"
time_page "rebuild" "/console/rebuild"
