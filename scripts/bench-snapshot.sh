#!/usr/bin/env bash
# Start-up with and without a view snapshot (docs/benchmarks.md, issue 16): seeds a data
# directory with USERS users, each replaced UPDATES times (a log of USERS * (1 + UPDATES)
# user events) through the real write path; then, on the embedded defaults (file log, views in
# memory):
#   1. starts Roster with no snapshot (the whole log replayed) and times it to /readyz;
#   2. stops it with SIGTERM, which writes the snapshot, and times the stop;
#   3. starts it again (the snapshot loaded, nothing left to replay) and times it to /readyz;
#   4. appends TAIL creates, kills it (-9, so no snapshot at stop), and times a start that
#      loads the snapshot and replays those TAIL records;
#   5. times `roster backup` of the data directory while that server runs (file log only).
# Prints each time, the log lines that say what start-up did, the snapshot's size, and the
# resident memory after each start.
#   bash scripts/bench-snapshot.sh [BIN] [USERS] [UPDATES] [TAIL]
# With ROSTER_BENCH_KAFKA=1 the log and the data keys are in Kafka instead: tansu (memory
# storage, about 2 KB of memory per event: keep USERS * (1 + UPDATES) to what the machine holds)
# started on loopback, seeded with `roster-load seed-log --kafka-brokers`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin=${1:-$root/target/release/roster} users=${2:-1000000} updates=${3:-9} tail=${4:-20000}
load="$(dirname "$bin")/roster-load"
d=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
broker=""
cleanup() {
    [ -n "${pid:-}" ] && kill -9 "$pid" 2>/dev/null
    [ -n "$broker" ] && kill "$broker" 2>/dev/null
    wait 2>/dev/null; rm -rf "$d"
}
trap cleanup EXIT
export ROSTER_SOURCE_RATE_PER_SECOND=0
seed_to=() serve_on=()
if [ "${ROSTER_BENCH_KAFKA:-}" = 1 ]; then
    kport=$(free_port)
    (cd "$d" && exec "${ROSTER_TEST_TANSU:-$HOME/.cache/roster/tansu-0.6.0/bin/tansu}" broker \
        --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$kport" \
        --advertised-listener-url "tcp://127.0.0.1:$kport" > "$d/tansu.log" 2>&1) &
    broker=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$kport") 2>/dev/null && break; sleep 0.1; done
    seed_to=(--kafka-brokers "127.0.0.1:$kport" --kafka-topic bench)
    serve_on=(--log kafka --kafka-brokers "127.0.0.1:$kport" --kafka-topic bench)
    echo "== tansu on 127.0.0.1:$kport"
fi
echo "== seeding $users users with $updates replacements each"
t0=$(date +%s.%N)
"$load" seed-log --dir "$d" "${seed_to[@]}" --users "$users" --updates "$updates" > "$d/seed.txt"
echo "seeded in $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s; log: $(du -sh "$d/log" 2>/dev/null | cut -f1)"
token=$(sed -n "s/^SCIM token: //p" "$d/seed.txt")
u="http://127.0.0.1:$port"

# Starts the server (extra args: $@) and prints the seconds to /readyz and the RSS.
start() {
    local t0
    t0=$(date +%s.%N)
    "$bin" serve --data-dir "$d" --listen "127.0.0.1:$port" "${serve_on[@]}" "$@" >> "$d/serve.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 12000); do
        curl -sf "$u/readyz" >/dev/null 2>&1 && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    curl -sf "$u/readyz" >/dev/null || { cat "$d/serve.log"; exit 1; }
    echo "  ready in $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s, RSS $(( $(awk '/VmRSS/ {print $2}' /proc/$pid/status) / 1024 )) MiB"
    grep -E "data keys loaded|loaded the view snapshot|replayed the event log|cannot be used|listening" "$d/serve.log" | tail -4 | sed 's/^/  /'
}

stop() {
    local t0
    t0=$(date +%s.%N)
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    echo "  stopped in $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s"
}

echo "== 1. start without a snapshot"
start
echo "== 2. stop (writes the snapshot)"
stop
grep -E "wrote a view snapshot" "$d/serve.log" | tail -1 | sed 's/^/  /'
echo "  snapshot: $(du -h "$d/snapshots/views.snap" | cut -f1)"
echo "== 3. start from the snapshot"
start
echo "== 4. $tail more creates, kill -9, start from the snapshot plus $tail records"
python3 - "$u" "$token" "$tail" <<'EOF'
import http.client, json, sys, urllib.parse
url, token, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(p.hostname, p.port)
for i in range(n):
    body = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": f"tail-{i}@example.com"})
    c.request("POST", "/source/scim/default/v2/Users", body, {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"})
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
EOF
kill -9 "$pid"; wait "$pid" 2>/dev/null || true; pid=
start
if [ -n "$broker" ]; then stop; exit 0; fi
echo "== 5. roster backup while it serves"
t0=$(date +%s.%N)
"$bin" backup --data-dir "$d" "$d/backup" | sed 's/^/  /'
echo "  backup took $(python3 -c "print(round($(date +%s.%N) - $t0, 2))") s"
stop
