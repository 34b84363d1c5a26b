#!/usr/bin/env bash
# HTTPS against plain HTTP in one run (docs/benchmarks.md): for each round, a fresh embedded
# server over plain HTTP, then one over HTTPS (a certificate from a private CA made here with
# the openssl command line, P-256), each taking 20,000 creates at 16 clients, then 100,000
# GETs by id and 100,000 `filter=userName eq` reads at 32 clients over keep-alive connections.
#   bash scripts/bench-https.sh [ROUNDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
LOAD="$root/target/release/roster-load"
ROSTER="$root/target/release/roster"
rounds=${1:-2}
certs=$(mktemp -d)
trap 'rm -rf "$certs"' EXIT
(
    cd "$certs"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.pem -days 2 -subj "/CN=bench CA" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
        -out server.csr -subj "/CN=127.0.0.1"
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
        -days 2 -extfile server.ext
) >/dev/null 2>&1
one() {
    local scheme=$1 port=$2 d tls=()
    d=$(mktemp -d)
    if [ "$scheme" = https ]; then tls=(--tls-cert "$certs/server.pem" --tls-key "$certs/server.key"); fi
    ROSTER_SOURCE_RATE_PER_SECOND=0 ROSTER_LOG=warn "$ROSTER" serve --data-dir "$d" \
        --listen "127.0.0.1:$port" "${tls[@]}" >"$d/out" 2>"$d/err" &
    local pid=$!
    for _ in $(seq 1 50); do
        curl -s --cacert "$certs/ca.pem" "$scheme://127.0.0.1:$port/healthz" >/dev/null && break
        sleep 0.1
    done
    export ROSTER_SCIM_TOKEN ROSTER_CA_CERT="$certs/ca.pem"
    ROSTER_SCIM_TOKEN=$(grep "SCIM token" "$d/out" | awk '{print $3}')
    local u="$scheme://127.0.0.1:$port/source/scim/default/v2" c16 get filter
    rate() { grep -oE "= [0-9]+/s" | tr -d '=/s '; }
    c16=$("$LOAD" creates --url "$u" --concurrency 16 --total 20000 --prefix seed 2>&1 | rate)
    get=$("$LOAD" reads --url "$u" --mode get --users 20000 --requests 100000 2>&1 | rate)
    filter=$("$LOAD" reads --url "$u" --mode filter --users 20000 --requests 100000 2>&1 | rate)
    echo "$scheme creates16=$c16 get=$get filter=$filter"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$d"
}
for r in $(seq 1 "$rounds"); do
    echo "== round $r"
    one http 18180
    one https 18181
done
