#!/usr/bin/env bash
# Kafka benchmark: capture_send / capture_recv against plain librdkafka
# (benches/raw_kafka.rs) with the same client settings, the same number of
# Kafka records and the same record size.
#
#   scripts/bench_kafka.sh [KEY=VALUE ...]      (or set them in the environment)
#
#   BROKERS       Kafka bootstrap servers. Default: start tansu on 127.0.0.1:19093
#                 (scripts/broker.sh, memory storage) and stop it on exit.
#   MOCK=1        use librdkafka's mock cluster (target/release/mock_broker on
#                 127.0.0.1:19094) instead; topics are created up front.
#   COUNT         numbers captured per send worker (default 2000000; 400000 with
#                 MOCK=1, which keeps only 5 MiB per partition: capped at 450000)
#   SEND_WORKERS  capture_send workers = raw producer threads = partitions (5)
#   RECV_WORKERS  capture_recv workers = raw consumer threads (3)
#   RUNS          runs; the table shows medians (3)
#   FRAME_EXTRA   capture frames per worker beyond ceil(COUNT/1024) (2)
#   BUILD=0       use the binaries already in target/release (no cargo build)
#
# Per run: capture_send, raw_kafka produce, capture_recv, raw_kafka consume,
# each on a fresh topic. capture_send writes ~8 KB frames (1024 u64 per event);
# the raw producer sends ceil(COUNT/1024)+FRAME_EXTRA records per thread of
# floor(capture bytes / (SEND_WORKERS * that)) bytes. capture_send does not
# print its frame count; FRAME_EXTRA (default 2: the stream header and the
# final frame) matches what raw_kafka consume counts in a capture topic.
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case "$arg" in
    BROKERS=* | MOCK=* | COUNT=* | SEND_WORKERS=* | RECV_WORKERS=* | RUNS=* | FRAME_EXTRA=* | BUILD=*) export "${arg?}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_kafka.sh: unknown argument '$arg' (expected KEY=VALUE)" >&2; exit 2 ;;
  esac
done

MOCK="${MOCK:-0}"
MOCK_PORT=19094
MOCK_MAX_COUNT=450000
if [[ "$MOCK" == 1 ]]; then
  COUNT="${COUNT:-400000}"
  if ((COUNT > MOCK_MAX_COUNT)); then
    echo "bench_kafka.sh: MOCK=1 keeps only 5 MiB per partition: COUNT capped at $MOCK_MAX_COUNT" >&2
    COUNT=$MOCK_MAX_COUNT
  fi
else
  COUNT="${COUNT:-2000000}"
fi
SEND_WORKERS="${SEND_WORKERS:-5}"
RECV_WORKERS="${RECV_WORKERS:-3}"
RUNS="${RUNS:-3}"
FRAME_EXTRA="${FRAME_EXTRA:-2}"
for name in COUNT SEND_WORKERS RECV_WORKERS RUNS; do
  if ! [[ "${!name}" =~ ^[1-9][0-9]*$ ]]; then
    echo "bench_kafka.sh: $name must be a positive integer, got '${!name}'" >&2
    exit 2
  fi
done
if ! [[ "$FRAME_EXTRA" =~ ^[0-9]+$ ]]; then
  echo "bench_kafka.sh: FRAME_EXTRA must be a non-negative integer, got '$FRAME_EXTRA'" >&2
  exit 2
fi

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/release"
WORK="$TARGET_DIR/bench-kafka"
mkdir -p "$WORK"

if [[ "${BUILD:-1}" != 0 ]]; then
  echo "bench_kafka.sh: building release binaries and benches/raw_kafka" >&2
  cargo build --release --quiet --bins
fi
RAW="$(BUILD="${BUILD:-1}" scripts/bench_target.sh raw_kafka)"

# Topic names (fresh per run).
cap_topic() { echo "bench-cap-$1"; }
raw_topic() { echo "bench-raw-$1"; }

BROKER_KIND=external
MOCK_PID=
STARTED_TANSU=0
cleanup() {
  if [[ -n "$MOCK_PID" ]]; then
    kill "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
  fi
  if [[ "$STARTED_TANSU" == 1 ]]; then
    BROKER_PORT=19093 BROKER_DIR="$TARGET_DIR/bench-broker" scripts/broker.sh stop || true
  fi
}
trap cleanup EXIT

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [[ "$MOCK" == 1 ]]; then
  BROKER_KIND=mock
  if answers "$MOCK_PORT"; then
    echo "bench_kafka.sh: something already listens on 127.0.0.1:$MOCK_PORT" >&2
    exit 1
  fi
  topics=()
  for run in $(seq 1 "$RUNS"); do
    topics+=(--topic "$(cap_topic "$run"):$SEND_WORKERS" --topic "$(raw_topic "$run"):$SEND_WORKERS")
  done
  "$BIN/mock_broker" --port "$MOCK_PORT" "${topics[@]}" >"$WORK/mock_broker.log" 2>&1 &
  MOCK_PID=$!
  for _ in $(seq 1 100); do
    answers "$MOCK_PORT" && break
    if ! kill -0 "$MOCK_PID" 2>/dev/null; then
      echo "bench_kafka.sh: mock_broker exited:" >&2
      cat "$WORK/mock_broker.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  answers "$MOCK_PORT" || { echo "bench_kafka.sh: mock_broker does not answer" >&2; exit 1; }
  BROKERS="127.0.0.1:$MOCK_PORT"
  CREATE_FLAG=--no-create   # the mock has no CreateTopics; the topics exist already
  CAPTURE_FLAG=             # capture_send accepts an existing empty topic
elif [[ -z "${BROKERS:-}" ]]; then
  BROKER_KIND=tansu
  BROKER_PORT=19093 BROKER_DIR="$TARGET_DIR/bench-broker" scripts/broker.sh start >&2
  STARTED_TANSU=1
  BROKERS=127.0.0.1:19093
  CREATE_FLAG=--overwrite
  CAPTURE_FLAG=--overwrite
else
  CREATE_FLAG=--overwrite
  CAPTURE_FLAG=--overwrite
fi

# Runs a command, keeping its output in $WORK/<name>.log; prints its last line
# starting with "<prefix>:" (the summary) or fails with the log.
summary() {
  local name="$1" prefix="$2"
  shift 2
  if ! "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    echo "bench_kafka.sh: '$*' failed:" >&2
    tail -n 20 "$WORK/$name.out" "$WORK/$name.err" >&2
    exit 1
  fi
  local line
  line="$(grep "^$prefix:" "$WORK/$name.out" | tail -n 1 || true)"
  if [[ -z "$line" ]]; then
    echo "bench_kafka.sh: '$*' printed no '$prefix:' line" >&2
    tail -n 20 "$WORK/$name.out" "$WORK/$name.err" >&2
    exit 1
  fi
  echo "$line"
}

# field LINE KEY: the value of KEY=VALUE in LINE.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
label() { case "$1" in raw_produce) echo "raw produce" ;; raw_consume) echo "raw consume" ;; *) echo "$1" ;; esac; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0) ? n / s : 0 }'; }

FRAMES=$(((COUNT + 1023) / 1024 + FRAME_EXTRA)) # Kafka records per capture_send worker
EXPECTED_RECORDS=$((COUNT * SEND_WORKERS))
EXPECTED_SUM=$((SEND_WORKERS * (COUNT * (COUNT - 1) / 2)))

declare -A SECONDS_OF RECORDS_OF BYTES_OF MSGS_OF
STAGES=(capture_send raw_produce capture_recv raw_consume)
for stage in "${STAGES[@]}"; do SECONDS_OF[$stage]=""; done

echo "bench_kafka.sh: brokers $BROKERS ($BROKER_KIND), COUNT=$COUNT SEND_WORKERS=$SEND_WORKERS RECV_WORKERS=$RECV_WORKERS RUNS=$RUNS" >&2
for run in $(seq 1 "$RUNS"); do
  cap="$(cap_topic "$run")"
  raw="$(raw_topic "$run")"

  # shellcheck disable=SC2086 # CAPTURE_FLAG may be empty
  send="$(summary "capture_send-$run" capture_send \
    "$BIN/capture_send" "$cap" "$COUNT" -w "$SEND_WORKERS" --brokers "$BROKERS" $CAPTURE_FLAG)"
  send_bytes="$(field "$send" bytes)"
  size=$((send_bytes / (SEND_WORKERS * FRAMES)))

  produce="$(summary "raw_produce-$run" "raw_kafka produce" \
    "$RAW" produce --brokers "$BROKERS" "$raw" --records "$FRAMES" --size "$size" --threads "$SEND_WORKERS" \
    "$CREATE_FLAG")"

  recv="$(summary "capture_recv-$run" capture_recv \
    "$BIN/capture_recv" "$cap" -w "$RECV_WORKERS" --brokers "$BROKERS")"
  recv_records="$(field "$recv" records)"
  recv_sum="$(field "$recv" sum)"
  if [[ "$recv_records" != "$EXPECTED_RECORDS" || "$recv_sum" != "$EXPECTED_SUM" ]]; then
    echo "bench_kafka.sh: run $run: capture_recv saw records=$recv_records sum=$recv_sum," \
      "expected records=$EXPECTED_RECORDS sum=$EXPECTED_SUM" >&2
    exit 1
  fi

  consume="$(summary "raw_consume-$run" "raw_kafka consume" \
    "$RAW" consume --brokers "$BROKERS" "$raw" --threads "$RECV_WORKERS")"
  consume_records="$(field "$consume" records)"
  if [[ "$consume_records" != "$((SEND_WORKERS * FRAMES))" ]]; then
    echo "bench_kafka.sh: run $run: raw consume read $consume_records records, expected $((SEND_WORKERS * FRAMES))" >&2
    exit 1
  fi

  for stage in "${STAGES[@]}"; do
    case "$stage" in
      capture_send) line="$send" msgs=$((SEND_WORKERS * FRAMES)) ;;
      raw_produce) line="$produce" msgs="" ;;
      capture_recv) line="$recv" msgs=$((SEND_WORKERS * FRAMES)) ;;
      raw_consume) line="$consume" msgs="" ;;
    esac
    records="$(field "$line" records)"
    SECONDS_OF[$stage]+=" $(field "$line" seconds)"
    RECORDS_OF[$stage]="$records"
    BYTES_OF[$stage]="$(field "$line" bytes)"
    MSGS_OF[$stage]="${msgs:-$records}"
  done
  printf 'run %d: capture_send %ss, raw produce %ss, capture_recv %ss, raw consume %ss\n' "$run" \
    "$(field "$send" seconds)" "$(field "$produce" seconds)" "$(field "$recv" seconds)" "$(field "$consume" seconds)" >&2
done

# Medians over runs of records/s, Kafka messages/s and MB/s.
declare -A REC_S MSG_S MB_S SEC
for stage in "${STAGES[@]}"; do
  rs=() ms=() mbs=() secs=()
  for s in ${SECONDS_OF[$stage]}; do
    secs+=("$s")
    rs+=("$(rate "${RECORDS_OF[$stage]}" "$s")")
    ms+=("$(rate "${MSGS_OF[$stage]}" "$s")")
    mbs+=("$(rate "$(awk -v b="${BYTES_OF[$stage]}" 'BEGIN { print b / 1e6 }')" "$s")")
  done
  SEC[$stage]="$(median "${secs[@]}")"
  REC_S[$stage]="$(median "${rs[@]}")"
  MSG_S[$stage]="$(median "${ms[@]}")"
  MB_S[$stage]="$(median "${mbs[@]}")"
done

echo
echo "Kafka benchmark: $BROKER_KIND broker $BROKERS, COUNT=$COUNT per worker, SEND_WORKERS=$SEND_WORKERS," \
  "RECV_WORKERS=$RECV_WORKERS, medians of $RUNS runs"
echo "raw records: $FRAMES per thread x $size bytes (= capture_send bytes / (ceil(COUNT/1024)+$FRAME_EXTRA frames per worker))"
printf '%-14s %12s %12s %10s %14s %12s %10s\n' stage records bytes seconds records/s msgs/s MB/s
for stage in "${STAGES[@]}"; do
  printf '%-14s %12s %12s %10s %14.0f %12.0f %10.1f\n' "$(label "$stage")" "${RECORDS_OF[$stage]}" "${BYTES_OF[$stage]}" \
    "${SEC[$stage]}" "${REC_S[$stage]}" "${MSG_S[$stage]}" "${MB_S[$stage]}"
done
echo "capture/raw MB/s: send $(ratio "${MB_S[capture_send]}" "${MB_S[raw_produce]}")," \
  "recv $(ratio "${MB_S[capture_recv]}" "${MB_S[raw_consume]}")"
echo "(records: u64 values for capture_*, Kafka records for raw_*; msgs/s counts Kafka records," \
  "taken as $FRAMES per worker for capture_*)"
