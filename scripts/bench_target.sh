#!/usr/bin/env bash
# Builds a baseline in benches/ (a `harness = false` bench target) in release
# mode and prints the path of its executable, for the bench scripts:
#
#   RAW="$(scripts/bench_target.sh raw_kafka)"
set -euo pipefail
cd "$(dirname "$0")/.."
name="${1:?usage: scripts/bench_target.sh NAME}"
cargo build --release --quiet --bench "$name" --message-format=json |
  python3 -c '
import json, sys
name = sys.argv[1]
found = None
# Read to the end: leaving early breaks cargo'"'"'s pipe, and it fails.
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == name and msg.get("executable"):
        found = found or msg["executable"]
if not found:
    sys.exit(f"bench_target.sh: no executable for bench target {name}")
print(found)
' "$name"
