#!/usr/bin/env bash
# Runs Roster's whole test suite: unit, property, contract and integration tests (the
# integration tests start the real server, and the real binary, on loopback ports).
#
# It sets up the services the suites need and stops them afterwards:
# - tansu, a Kafka-compatible broker from crates.io, built once and cached in
#   ~/.cache/roster/tansu-0.6.0 (about 10 minutes on 2 cores the first time), started on a
#   free loopback port with in-memory storage. Tests that stop and start brokers of their own
#   find the binary in ROSTER_TEST_TANSU.
# - librdkafka's mock cluster needs nothing: it runs inside the test process.
# - stunnel (Debian's stunnel4), the TLS terminator the Kafka TLS tests put in front of tansu
#   of their own (tansu itself speaks plain TCP only); ROSTER_TEST_STUNNEL.
# - a private PostgreSQL cluster (scripts/postgres.sh): initdb into a temporary directory, as
#   the `postgres` user when run as root, on a free loopback port, serving TLS with a CA of
#   its own (made with the openssl command line). Each test creates its own database in it.
#   Tests that restart PostgreSQL or check TLS find it through ROSTER_TEST_PG_*.
# - scim2-server from PyPI, the independent SCIM server the provider tests sync to, installed
#   once into a virtualenv in ~/.cache/roster/scim2-server-0.8.3; each test starts its own on
#   a free loopback port (ROSTER_TEST_SCIM2_SERVER).
# - django-scim2 0.23 from PyPI, a second independent SCIM server that takes less than the RFC
#   (tests/django_scim_remote), installed once into ~/.cache/roster/django-scim2-0.23.0; each
#   test starts its own (ROSTER_TEST_DJANGO_PYTHON).
# - Chromium and chromedriver (Debian's chromium and chromium-driver), which the console's
#   browser tests start per test (ROSTER_TEST_CHROMIUM, ROSTER_TEST_CHROMEDRIVER).
# - scim2-tester with scim2-cli from PyPI, the independent compliance checker run against Roster
#   (ROSTER_TEST_SCIM2_CLI), installed once into ~/.cache/roster/scim2-tester-0.5.2.
# - openapi-spec-validator from PyPI, which checks the admin API's OpenAPI document
#   (ROSTER_TEST_OPENAPI_VALIDATOR), installed once into ~/.cache/roster.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh

TANSU_VERSION=0.6.0
TANSU_ROOT="${ROSTER_TANSU_ROOT:-$HOME/.cache/roster/tansu-$TANSU_VERSION}"
TANSU="$TANSU_ROOT/bin/tansu"
if [ ! -x "$TANSU" ]; then
    echo "== building tansu $TANSU_VERSION into $TANSU_ROOT (once)"
    CARGO_TARGET_DIR="${ROSTER_TANSU_TARGET:-$TANSU_ROOT/target}" \
        cargo install tansu --version "$TANSU_VERSION" --locked \
        --features dynostore,libsql --root "$TANSU_ROOT"
fi

# venv ROOT CHECK PACKAGE...: installs PACKAGE... once into a virtualenv at ROOT, unless the
# command CHECK (run in ROOT) already succeeds.
venv() {
    local root=$1 check=$2
    shift 2
    if ! (cd "$root" 2>/dev/null && eval "$check") >/dev/null 2>&1; then
        echo "== installing $* into $root (once)"
        python3 -m venv "$root"
        "$root/bin/pip" install --quiet "$@"
    fi
}

SCIM2_VERSION=0.8.3
SCIM2_ROOT="${ROSTER_SCIM2_ROOT:-$HOME/.cache/roster/scim2-server-$SCIM2_VERSION}"
SCIM2="$SCIM2_ROOT/bin/scim2-server"
venv "$SCIM2_ROOT" "test -x bin/scim2-server" "scim2-server==$SCIM2_VERSION"

# scim2-tester, the independent RFC 7643/7644 compliance checker, with its command line.
SCIM2_TESTER_VERSION=0.5.2
SCIM2_CLI_ROOT="${ROSTER_SCIM2_CLI_ROOT:-$HOME/.cache/roster/scim2-tester-$SCIM2_TESTER_VERSION}"
SCIM2_CLI="$SCIM2_CLI_ROOT/bin/scim2"
venv "$SCIM2_CLI_ROOT" "test -x bin/scim2" "scim2-tester==$SCIM2_TESTER_VERSION" "scim2-cli==0.6.0"

# openapi-spec-validator, the independent check of the admin API's OpenAPI 3.1 document
# (tests/openapi.rs).
OPENAPI_VALIDATOR_VERSION=0.9.0
OPENAPI_VALIDATOR_ROOT="${ROSTER_OPENAPI_VALIDATOR_ROOT:-$HOME/.cache/roster/openapi-spec-validator-$OPENAPI_VALIDATOR_VERSION}"
OPENAPI_VALIDATOR="$OPENAPI_VALIDATOR_ROOT/bin/openapi-spec-validator"
venv "$OPENAPI_VALIDATOR_ROOT" "test -x bin/openapi-spec-validator" \
    "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"

# django-scim2, the second independent SCIM server the provider tests sync to (the project
# in tests/django_scim_remote), installed once with Django.
DJANGO_SCIM_VERSION=0.23.0
DJANGO_ROOT="${ROSTER_DJANGO_ROOT:-$HOME/.cache/roster/django-scim2-$DJANGO_SCIM_VERSION}"
venv "$DJANGO_ROOT" "bin/python -c 'import django_scim'" \
    "django-scim2==$DJANGO_SCIM_VERSION" "Django==5.2.*"

# Chromium and its WebDriver from Debian, for the console's browser tests.
CHROMIUM="${ROSTER_CHROMIUM:-$(command -v chromium || true)}"
CHROMEDRIVER="${ROSTER_CHROMEDRIVER:-$(command -v chromedriver || true)}"
if [ -z "$CHROMIUM" ] || [ -z "$CHROMEDRIVER" ]; then
    echo "chromium or chromedriver is missing: install Debian's chromium and chromium-driver (.ci/run does)" >&2
    exit 1
fi

STUNNEL="${ROSTER_STUNNEL:-$(command -v stunnel || command -v stunnel4 || true)}"
if [ -z "$STUNNEL" ]; then
    echo "stunnel is missing: install Debian's stunnel4 (.ci/run does)" >&2
    exit 1
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

work=$(mktemp -d)
# PostgreSQL's own directory: not inside $work, which only root may enter.
pg_dir=$(mktemp -d)
tansu_pid=""
cleanup() {
    stop_postgres
    if [ -n "$tansu_pid" ]; then kill "$tansu_pid" 2>/dev/null || true; wait "$tansu_pid" 2>/dev/null || true; fi
    rm -rf "$work" "$pg_dir"
}
trap cleanup EXIT

port=$(free_port)
(cd "$work" && exec "$TANSU" broker --storage-engine memory://tansu/ \
    --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    >"$work/tansu.log" 2>&1) &
tansu_pid=$!
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    sleep 0.1
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "tansu did not start on 127.0.0.1:$port:" >&2
    cat "$work/tansu.log" >&2
    exit 1
fi
echo "== tansu $TANSU_VERSION on 127.0.0.1:$port"

start_postgres "$pg_dir"

export ROSTER_TEST_KAFKA_BROKERS="127.0.0.1:$port"
export ROSTER_TEST_TANSU="$TANSU"
export ROSTER_TEST_STUNNEL="$STUNNEL"
export ROSTER_TEST_SCIM2_SERVER="$SCIM2"
export ROSTER_TEST_SCIM2_CLI="$SCIM2_CLI"
export ROSTER_TEST_OPENAPI_VALIDATOR="$OPENAPI_VALIDATOR"
export ROSTER_TEST_DJANGO_PYTHON="$DJANGO_ROOT/bin/python"
export ROSTER_TEST_CHROMIUM="$CHROMIUM"
export ROSTER_TEST_CHROMEDRIVER="$CHROMEDRIVER"
cargo test --workspace --locked "$@"
