#!/usr/bin/env bash
# Runs Roster's whole test suite: unit, property, contract and integration tests (the
# integration tests start the real server, and the real binary, on loopback ports).
# Services that later suites need (PostgreSQL, a Kafka-protocol broker) are started here too,
# as they are added; today every suite runs embedded.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
