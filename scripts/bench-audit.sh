#!/usr/bin/env bash
# The audit trail at scale (docs/benchmarks.md): seeds a data directory with N users through
# the real write path (each create with its own request id and a client, as SCIM requests
# leave them), then builds the audit index from its log and times reads, export and verify
# in process (`roster-load audit`).
#   bash scripts/bench-audit.sh [USERS] [SAMPLES]
set -euo pipefail
users=${1:-1000000} samples=${2:-200}
root="$(cd "$(dirname "$0")/.." && pwd)"
load="$root/target/release/roster-load"
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$load" seed-log --dir "$d" --users "$users" | grep -v token
"$load" audit --dir "$d" --samples "$samples"
