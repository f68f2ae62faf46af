#!/usr/bin/env bash
# The run behind docs/metrics_restart.svg (docs/operations.md): an
# exactly-once word_count follows temp_gen's lines (RATE per second for
# RUN_SECONDS) on an Apache Kafka of its own; its metrics are scraped every
# 0.5 s (scripts/plot_metrics.py record) while the broker is stopped at
# STOP_AT seconds and started again DOWN seconds later.
#
#   scripts/metrics_restart.sh [OUT.svg]   (default docs/metrics_restart.svg)
#
# Environment: RATE (500), RUN_SECONDS (60), STOP_AT (20), DOWN (10),
# KAFKA_PORT (29092). Binaries: $CARGO_TARGET_DIR/release (built unless BUILD=0).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/metrics_restart.svg}"
RATE="${RATE:-500}"
SECONDS_RUN="${RUN_SECONDS:-60}"
STOP_AT="${STOP_AT:-20}"
DOWN="${DOWN:-10}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/release"
export KAFKA_DIR="$TARGET_DIR/metrics-restart-kafka" KAFKA_PORT="${KAFKA_PORT:-29092}"
[[ "${BUILD:-1}" == 0 ]] || cargo build --release --quiet --example word_count --example temp_gen

WORK="$(mktemp -d "${TMPDIR:-/tmp}/metrics_restart.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  scripts/kafka.sh stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
BROKERS="$(scripts/kafka.sh start)"
PORT=$((20000 + RANDOM % 20000))
"$BIN/examples/word_count" --brokers "$BROKERS" --input restart-in --output restart-out --exactly-once --live \
  --commit-interval-ms 500 --metrics-addr "127.0.0.1:$PORT" >/dev/null 2>"$WORK/wc.err" &
PIDS+=($!)
"$BIN/examples/temp_gen" --brokers "$BROKERS" --topic restart-in --partitions 2 \
  --count $((RATE * SECONDS_RUN)) --rate "$RATE" >/dev/null 2>"$WORK/gen.err" &
PIDS+=($!)
scripts/plot_metrics.py record "http://127.0.0.1:$PORT/metrics" "$WORK/series.tsv" $((SECONDS_RUN + 15)) &
RECORDER=$!
sleep "$STOP_AT"
scripts/kafka.sh stop --node 1 >/dev/null
echo "# event $STOP_AT broker stopped" >>"$WORK/events"
sleep "$DOWN"
scripts/kafka.sh start --node 1 >/dev/null
echo "# event $((STOP_AT + DOWN)) broker back" >>"$WORK/events"
wait "$RECORDER"
cat "$WORK/events" >>"$WORK/series.tsv"
cp "$WORK/series.tsv" "${OUT%.svg}.tsv"
scripts/plot_metrics.py plot "$WORK/series.tsv" "$OUT"
echo "metrics_restart: wrote $OUT and ${OUT%.svg}.tsv"
