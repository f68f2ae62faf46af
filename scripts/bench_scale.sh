#!/usr/bin/env bash
# Scaling sweep: send and receive throughput against the worker count, on the
# file log (scripts/bench_file.sh) and on Kafka (scripts/bench_kafka.sh), with
# the same total data at every worker count. Writes docs/scaling.md (a
# Markdown table of medians) and docs/scaling.svg (MB/s against workers,
# drawn by scripts/plot_scaling.py with Python's standard library).
#
#   scripts/bench_scale.sh [KEY=VALUE ...]      (or set them in the environment)
#
#   WORKERS       worker counts, send = receive (default "1 2 4 8")
#   RUNS          runs per point; medians (3)
#   FILE_TOTAL    numbers captured in all, file log (default 40000000: ~320 MB)
#   KAFKA_TOTAL   numbers captured in all, Kafka (default 10000000: ~80 MB)
#   BROKERS       Kafka brokers; default: start Apache Kafka (scripts/kafka.sh,
#                 data on disk) on 127.0.0.1:$KAFKA_BENCH_PORT
#   CLUSTER=1     that Apache Kafka as a 3-node cluster (replication factor 3)
#   KAFKA_BENCH_PORT  its first port (default 19393)
#   TANSU=1       start tansu on 127.0.0.1:$TANSU_PORT instead
#   TANSU_PORT    (default 19093)
#   SKIP          "file" or "kafka" to leave one out
#   OUT           output directory (default docs)
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case "$arg" in
    WORKERS=* | RUNS=* | FILE_TOTAL=* | KAFKA_TOTAL=* | BROKERS=* | CLUSTER=* | TANSU=* | KAFKA_BENCH_PORT=* | TANSU_PORT=* | SKIP=* | OUT=*) export "${arg?}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_scale.sh: unknown argument '$arg' (expected KEY=VALUE)" >&2; exit 2 ;;
  esac
done
WORKERS="${WORKERS:-1 2 4 8}"
RUNS="${RUNS:-3}"
FILE_TOTAL="${FILE_TOTAL:-40000000}"
KAFKA_TOTAL="${KAFKA_TOTAL:-10000000}"
TANSU_PORT="${TANSU_PORT:-19093}"
KAFKA_BENCH_PORT="${KAFKA_BENCH_PORT:-19393}"
SKIP="${SKIP:-}"
OUT="${OUT:-docs}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
WORK="$TARGET_DIR/bench-scale"
mkdir -p "$WORK" "$OUT"

STARTED_TANSU=0
STARTED_KAFKA=0
scale_kafka() { KAFKA_DIR="$TARGET_DIR/bench-scale-apache-kafka" KAFKA_PORT="$KAFKA_BENCH_PORT" scripts/kafka.sh "$@"; }
cleanup() {
  if [[ "$STARTED_KAFKA" == 1 ]]; then
    scale_kafka stop || true
  fi
  if [[ "$STARTED_TANSU" == 1 ]]; then
    BROKER_PORT=$TANSU_PORT BROKER_DIR="$TARGET_DIR/bench-scale-broker" scripts/broker.sh stop || true
  fi
}
trap cleanup EXIT

# field LINE KEY: the value of KEY=VALUE in LINE.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<" $1"; }

cargo build --release --quiet --bins
if [[ "$SKIP" != kafka && -z "${BROKERS:-}" && "${TANSU:-0}" != 1 ]]; then
  nodes=1
  [[ "${CLUSTER:-0}" != 1 ]] || nodes=3
  STARTED_KAFKA=1
  BROKERS="$(scale_kafka start --nodes "$nodes")"
elif [[ "$SKIP" != kafka && -z "${BROKERS:-}" ]]; then
  BROKER_PORT=$TANSU_PORT BROKER_DIR="$TARGET_DIR/bench-scale-broker" scripts/broker.sh start >&2
  STARTED_TANSU=1
  BROKERS="127.0.0.1:$TANSU_PORT"
fi

TSV="$WORK/scaling.tsv"
ROWS="$WORK/rows.md"
printf 'workers\tfile send\tfile recv\tkafka send\tkafka recv\traw produce (1 client)\traw consume (best)\n' >"$TSV"
: >"$ROWS"
for w in $WORKERS; do
  file_send=- file_recv=- kafka_send=- kafka_recv=- raw_produce=- raw_consume=- send_rss=- recv_rss=-
  if [[ "$SKIP" != file ]]; then
    echo "bench_scale.sh: file log, $w workers" >&2
    line="$(COUNT=$((FILE_TOTAL / w)) SEND_WORKERS=$w RECV_WORKERS=$w RUNS=$RUNS scripts/bench_file.sh 2>"$WORK/file-$w.err" |
      tee "$WORK/file-$w.out" | grep '^bench_file:' | tail -n 1)" ||
      { echo "bench_scale.sh: bench_file.sh failed:" >&2; tail -n 20 "$WORK/file-$w.err" >&2; exit 1; }
    file_send="$(field "$line" send_mb_s)"
    file_recv="$(field "$line" recv_mb_s)"
  fi
  if [[ "$SKIP" != kafka ]]; then
    echo "bench_scale.sh: Kafka ($BROKERS), $w workers" >&2
    line="$(BUILD=0 BROKERS="$BROKERS" COUNT=$((KAFKA_TOTAL / w)) SEND_WORKERS=$w RECV_WORKERS=$w RUNS=$RUNS \
      scripts/bench_kafka.sh 2>"$WORK/kafka-$w.err" | tee "$WORK/kafka-$w.out" | grep '^bench_kafka:' | tail -n 1)" ||
      { echo "bench_scale.sh: bench_kafka.sh failed:" >&2; tail -n 20 "$WORK/kafka-$w.err" >&2; exit 1; }
    kafka_send="$(field "$line" send_mb_s)"
    kafka_recv="$(field "$line" recv_mb_s)"
    raw_produce="$(field "$line" raw_produce_mb_s)"
    raw_consume="$(field "$line" raw_consume_mb_s)"
    send_rss="$(field "$line" send_rss_mib)"
    recv_rss="$(field "$line" recv_rss_mib)"
  fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$file_send" "$file_recv" "$kafka_send" "$kafka_recv" \
    "$raw_produce" "$raw_consume" >>"$TSV"
  printf '| %s | %s | %s | %s | %s | %s | %s | %s / %s |\n' "$w" "$file_send" "$file_recv" "$kafka_send" \
    "$kafka_recv" "$raw_produce" "$raw_consume" "$send_rss" "$recv_rss" >>"$ROWS"
done

{
  echo "# Scaling: throughput against workers"
  echo
  echo "Written by \`scripts/bench_scale.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores). Send and receive use"
  echo "the same number of workers; the total data is the same at every point (file log:"
  echo "$FILE_TOTAL numbers, Kafka: $KAFKA_TOTAL numbers, as u64 in 1024-number events, ~8 KB"
  echo "frames). Medians of $RUNS runs, MB/s (10^6 bytes per second). Kafka: ${BROKERS:-skipped}; the raw"
  echo "columns are plain librdkafka in the same run (one producer client for every partition;"
  echo "the best of three consumer layouts). RSS: peak of capture_send / capture_recv."
  echo
  echo "| workers | file send | file recv | Kafka send | Kafka recv | raw produce (1 client) | raw consume (best) | Kafka RSS MiB send / recv |"
  echo "|---|---|---|---|---|---|---|---|"
  cat "$ROWS"
  echo
  echo "![MB/s against workers](scaling.svg)"
} >"$OUT/scaling.md"
python3 scripts/plot_scaling.py "$TSV" "$OUT/scaling.svg"
cat "$OUT/scaling.md"
echo "bench_scale.sh: wrote $OUT/scaling.md and $OUT/scaling.svg" >&2
