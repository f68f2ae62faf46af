#!/usr/bin/env bash
# The cost of the metrics (docs/benchmarks.md, "Metrics overhead"): the
# same capture_send / capture_recv runs with three builds or settings,
# interleaved run by run so the shared machine's drift hits all alike:
#   before     binaries built from the commit before the metrics (BEFORE_BIN)
#   after      this tree's binaries, no recorder installed
#   recorder   this tree's binaries with --metrics-addr (Prometheus exporter)
#
#   BEFORE_BIN=DIR scripts/bench_overhead.sh [file|kafka]
#
# DIR holds capture_send and capture_recv of the earlier build (e.g. built
# from `git archive <commit>` with cargo build --release --bins). Prints
# the median MB/s of each and the ratios to `before`. Environment: COUNT
# (numbers per worker, 10000000 file / 1000000 kafka), SEND_WORKERS (4),
# RECV_WORKERS (2), RUNS (5), BROKERS (kafka).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-file}"
BEFORE_BIN="${BEFORE_BIN:?BEFORE_BIN=DIR with the earlier capture_send and capture_recv}"
AFTER_BIN="${AFTER_BIN:-${CARGO_TARGET_DIR:-target}/release}"
SEND_WORKERS="${SEND_WORKERS:-4}"
RECV_WORKERS="${RECV_WORKERS:-2}"
RUNS="${RUNS:-5}"
BROKERS="${BROKERS:-${KAFKA_BROKERS:-}}"
if [[ $MODE == kafka ]]; then
  COUNT="${COUNT:-1000000}"
  [[ -n $BROKERS ]] || { echo "bench_overhead: kafka needs BROKERS" >&2; exit 2; }
else
  COUNT="${COUNT:-10000000}"
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench_overhead.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# run VARIANT N: one send and one recv; appends "send recv" MB/s to WORK/VARIANT.
run() {
  local variant="$1" n="$2"
  local bin="$AFTER_BIN" metrics=() log=() topic="ovh-$variant-$n-$$"
  [[ $variant == before ]] && bin="$BEFORE_BIN"
  [[ $variant == recorder ]] && metrics=(--metrics-addr "127.0.0.1:$((20000 + RANDOM % 20000))")
  if [[ $MODE == kafka ]]; then log=(--brokers "$BROKERS"); else log=(--data-dir "$WORK/log-$variant-$n"); fi
  local send recv
  send="$("$bin/capture_send" "$topic" "$COUNT" -w "$SEND_WORKERS" "${log[@]}" "${metrics[@]}" 2>/dev/null | tail -n 1)"
  recv="$("$bin/capture_recv" "$topic" "$SEND_WORKERS" -w "$RECV_WORKERS" "${log[@]}" "${metrics[@]}" 2>/dev/null | tail -n 1)"
  echo "${send##*mb_per_s=} ${recv##*mb_per_s=}" >>"$WORK/$variant"
  rm -rf "$WORK/log-$variant-$n"
}

for n in $(seq "$RUNS"); do
  for variant in before after recorder; do run "$variant" "$n"; done
done
python3 - "$WORK" "$MODE" "$COUNT" "$SEND_WORKERS" "$RECV_WORKERS" "$RUNS" <<'PY'
import statistics, sys
work, mode, count, send_w, recv_w, runs = sys.argv[1:]
med = {}
for variant in ("before", "after", "recorder"):
    rows = [list(map(float, l.split())) for l in open(f"{work}/{variant}")]
    med[variant] = (statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows))
print(f"bench_overhead: {mode}, {count} numbers x {send_w} workers, recv -w{recv_w}, medians of {runs} (MB/s)")
for variant, (send, recv) in med.items():
    b = med["before"]
    print(f"  {variant:9} send {send:8.1f} ({send / b[0]:.2f})  recv {recv:8.1f} ({recv / b[1]:.2f})")
PY
