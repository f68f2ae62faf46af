#!/usr/bin/env bash
# Kafka benchmark: capture_send / capture_recv against plain librdkafka
# (benches/raw_kafka.rs) with the same client settings, the same number of
# Kafka records and the same record size, and every process's peak RSS and
# CPU time, user + system, start to exit (/usr/bin/time -v): on a machine
# whose cores the broker shares, CPU time is what a client costs.
#
#   scripts/bench_kafka.sh [KEY=VALUE ...]      (or set them in the environment)
#
#   BROKERS       Kafka bootstrap servers. Default: start Apache Kafka
#                 (scripts/kafka.sh, data on disk under target/) on
#                 127.0.0.1:$KAFKA_BENCH_PORT and stop it on exit.
#   CLUSTER=1     that Apache Kafka as a 3-node cluster: topics replicated 3
#                 times, min.insync.replicas 2 (the production shape)
#   KAFKA_BENCH_PORT  its first port (19293; a cluster uses 6 ports from it)
#   TANSU=1       start tansu (scripts/broker.sh, memory storage) on
#                 127.0.0.1:$TANSU_PORT instead
#   TANSU_PORT    port of that tansu (19093)
#   MOCK=1        use librdkafka's mock cluster (target/release/mock_broker on
#                 127.0.0.1:$MOCK_PORT, default 19094) instead; topics are created up front.
#   COUNT         numbers captured per send worker (default 2000000; 400000 with
#                 MOCK=1, which keeps only 5 MiB per partition: capped at 450000)
#   SEND_WORKERS  capture_send workers = raw producer threads = partitions (5)
#   RECV_WORKERS  capture_recv workers = raw consumer threads (3)
#   RUNS          runs; the table shows medians (3)
#   FRAME_EXTRA   capture frames per worker beyond ceil(COUNT/1024) (2)
#   BUILD=0       use the binaries already in target/release (no cargo build)
#   SEND_RSS_MIB / RECV_RSS_MIB   peak-RSS bounds the ratios compare with (256 / 512)
#
# Per run, each on a fresh topic: capture_send; capture_recv; raw produce
# with a client per partition and with ONE client for every partition (the
# baseline: `single`); raw consume of the latter in three client layouts (a client per
# thread, per partition, one client with split partition queues), and two
# clients per partition that do a replay's per-byte work: `checked` computes
# each payload's CRC-32C, `decoded` also copies it into a Vec<u64> and sums
# it (what capture_recv does with each frame, without timely). The send
# ratio is against the single client, the receive ratio against the best
# raw consume layout (medians). The last line, `bench_kafka: key=value ...`,
# is for scripts (scripts/bench_scale.sh). capture_send writes ~8 KB frames (1024 u64 per event);
# the raw producer sends ceil(COUNT/1024)+FRAME_EXTRA records per thread of
# floor(capture bytes / (SEND_WORKERS * that)) bytes. capture_send does not
# print its frame count; FRAME_EXTRA (default 2: the stream header and the
# final frame) matches what raw_kafka consume counts in a capture topic.
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case "$arg" in
    BROKERS=* | MOCK=* | CLUSTER=* | TANSU=* | KAFKA_BENCH_PORT=* | COUNT=* | SEND_WORKERS=* | RECV_WORKERS=* | RUNS=* | FRAME_EXTRA=* | BUILD=* | TANSU_PORT=* | MOCK_PORT=* | SEND_RSS_MIB=* | RECV_RSS_MIB=*) export "${arg?}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_kafka.sh: unknown argument '$arg' (expected KEY=VALUE)" >&2; exit 2 ;;
  esac
done

MOCK="${MOCK:-0}"
MOCK_PORT="${MOCK_PORT:-19094}"
TANSU_PORT="${TANSU_PORT:-19093}"
KAFKA_BENCH_PORT="${KAFKA_BENCH_PORT:-19293}"
SEND_RSS_MIB="${SEND_RSS_MIB:-256}"
RECV_RSS_MIB="${RECV_RSS_MIB:-512}"
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
TIME=/usr/bin/time
[[ -x "$TIME" ]] || { echo "bench_kafka.sh: needs GNU time at $TIME (apt-get install time)" >&2; exit 1; }
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
STARTED_KAFKA=0
bench_kafka() { KAFKA_DIR="$TARGET_DIR/bench-apache-kafka" KAFKA_PORT="$KAFKA_BENCH_PORT" scripts/kafka.sh "$@"; }
cleanup() {
  if [[ "$STARTED_KAFKA" == 1 ]]; then
    bench_kafka stop || true
  fi
  if [[ -n "$MOCK_PID" ]]; then
    kill "$MOCK_PID" 2>/dev/null || true
    wait "$MOCK_PID" 2>/dev/null || true
  fi
  if [[ "$STARTED_TANSU" == 1 ]]; then
    BROKER_PORT=$TANSU_PORT BROKER_DIR="$TARGET_DIR/bench-broker" scripts/broker.sh stop || true
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
    topics+=(--topic "$(cap_topic "$run"):$SEND_WORKERS" --topic "$(raw_topic "$run"):$SEND_WORKERS"
      --topic "$(raw_topic "$run")-pp:$SEND_WORKERS")
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
elif [[ -z "${BROKERS:-}" && "${TANSU:-0}" != 1 ]]; then
  nodes=1
  [[ "${CLUSTER:-0}" != 1 ]] || nodes=3
  BROKER_KIND="Apache Kafka ($nodes node(s))"
  STARTED_KAFKA=1
  BROKERS="$(bench_kafka start --nodes "$nodes")"
  CREATE_FLAG=--overwrite
  CAPTURE_FLAG=--overwrite
elif [[ -z "${BROKERS:-}" ]]; then
  BROKER_KIND=tansu
  BROKER_PORT=$TANSU_PORT BROKER_DIR="$TARGET_DIR/bench-broker" scripts/broker.sh start >&2
  STARTED_TANSU=1
  BROKERS=127.0.0.1:$TANSU_PORT
  CREATE_FLAG=--overwrite
  CAPTURE_FLAG=--overwrite
else
  CREATE_FLAG=--overwrite
  CAPTURE_FLAG=--overwrite
fi

# Runs a command under /usr/bin/time -v, keeping its output in $WORK/<name>.*;
# prints its last line starting with "<prefix>:" (the summary) followed by
# " rss_kib=<peak RSS>", or fails with the log.
summary() {
  local name="$1" prefix="$2"
  shift 2
  if ! "$TIME" -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    echo "bench_kafka.sh: '$*' failed:" >&2
    tail -n 20 "$WORK/$name.out" "$WORK/$name.err" "$WORK/$name.time" >&2
    exit 1
  fi
  local line rss
  line="$(grep "^$prefix:" "$WORK/$name.out" | tail -n 1 || true)"
  if [[ -z "$line" ]]; then
    echo "bench_kafka.sh: '$*' printed no '$prefix:' line" >&2
    tail -n 20 "$WORK/$name.out" "$WORK/$name.err" >&2
    exit 1
  fi
  rss="$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$WORK/$name.time")"
  cpu="$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$WORK/$name.time")"
  echo "$line rss_kib=${rss:-0} cpu_s=${cpu:-0}"
}

# field LINE KEY: the value of KEY=VALUE in LINE.
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0) ? n / s : 0 }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

FRAMES=$(((COUNT + 1023) / 1024 + FRAME_EXTRA)) # Kafka records per capture_send worker
EXPECTED_RECORDS=$((COUNT * SEND_WORKERS))
# capture_send's generator (cli/src/numbers.rs): worker w sends w, w+N, ...: 0..COUNT*N in all.
EXPECTED_SUM=$((EXPECTED_RECORDS * (EXPECTED_RECORDS - 1) / 2))
EXPECTED_SUM_DISTINCT=$EXPECTED_SUM
RAW_RECORDS=$((SEND_WORKERS * FRAMES))

STAGES=(capture_send raw_produce_single raw_produce_per_partition capture_recv raw_consume_per_thread
  raw_consume_per_partition raw_consume_split raw_consume_checked raw_consume_decoded)
declare -A SECONDS_OF RECORDS_OF BYTES_OF RSS_OF CPU_OF
for stage in "${STAGES[@]}"; do SECONDS_OF[$stage]="" RSS_OF[$stage]="" CPU_OF[$stage]=""; done

echo "bench_kafka.sh: brokers $BROKERS ($BROKER_KIND), COUNT=$COUNT SEND_WORKERS=$SEND_WORKERS RECV_WORKERS=$RECV_WORKERS RUNS=$RUNS" >&2
for run in $(seq 1 "$RUNS"); do
  cap="$(cap_topic "$run")"
  raw="$(raw_topic "$run")"
  declare -A LINE=()

  # shellcheck disable=SC2086 # CAPTURE_FLAG may be empty
  LINE[capture_send]="$(summary "capture_send-$run" capture_send \
    "$BIN/capture_send" "$cap" "$COUNT" -w "$SEND_WORKERS" --brokers "$BROKERS" $CAPTURE_FLAG)"
  send_bytes="$(field "${LINE[capture_send]}" bytes)"
  size=$((send_bytes / RAW_RECORDS))

  # Each topic is read while it is the newest one written: at 4 GB per
  # topic the page cache does not hold all three, and a replay that ran
  # after the raw producers read its topic partly from disk (3.9 s instead
  # of 1.8 s, measured).
  LINE[capture_recv]="$(summary "capture_recv-$run" capture_recv \
    "$BIN/capture_recv" "$cap" -w "$RECV_WORKERS" --brokers "$BROKERS")"
  recv_records="$(field "${LINE[capture_recv]}" records)"
  recv_sum="$(field "${LINE[capture_recv]}" sum)"
  if [[ "$recv_records" != "$EXPECTED_RECORDS" || ("$recv_sum" != "$EXPECTED_SUM" && "$recv_sum" != "$EXPECTED_SUM_DISTINCT") ]]; then
    echo "bench_kafka.sh: run $run: capture_recv saw records=$recv_records sum=$recv_sum," \
      "expected records=$EXPECTED_RECORDS sum=$EXPECTED_SUM" >&2
    exit 1
  fi

  # The single-client baseline writes the topic the consumers read; the
  # per-partition producer writes a second one (the mock: its own topic).
  for layout in per-partition single; do
    topic="$raw"
    [[ "$layout" == single ]] || topic="$raw-pp"
    LINE[raw_produce_${layout//-/_}]="$(summary "raw_produce_$layout-$run" "raw_kafka produce" \
      "$RAW" produce --brokers "$BROKERS" "$topic" --records "$FRAMES" --size "$size" --threads "$SEND_WORKERS" \
      --layout "$layout" "$CREATE_FLAG")"
  done

  # `checked` / `decoded`: a client per partition that also checksums (and
  # decodes) every payload: consumers that read the bytes, not candidates for
  # the best raw consume, which the ratio is against.
  for layout in per-thread per-partition split checked decoded; do
    stage="raw_consume_${layout//-/_}"
    flags=(--layout "$layout")
    [[ "$layout" != checked ]] || flags=(--layout per-partition --checksum)
    [[ "$layout" != decoded ]] || flags=(--layout per-partition --decode)
    LINE[$stage]="$(summary "$stage-$run" "raw_kafka consume" \
      "$RAW" consume --brokers "$BROKERS" "$raw" --threads "$RECV_WORKERS" "${flags[@]}")"
    consumed="$(field "${LINE[$stage]}" records)"
    if [[ "$consumed" != "$RAW_RECORDS" ]]; then
      echo "bench_kafka.sh: run $run: raw consume ($layout) read $consumed records, expected $RAW_RECORDS" >&2
      exit 1
    fi
  done

  report="run $run:"
  for stage in "${STAGES[@]}"; do
    line="${LINE[$stage]}"
    SECONDS_OF[$stage]+=" $(field "$line" seconds)"
    RSS_OF[$stage]+=" $(field "$line" rss_kib)"
    CPU_OF[$stage]+=" $(field "$line" cpu_s)"
    RECORDS_OF[$stage]="$(field "$line" records)"
    BYTES_OF[$stage]="$(field "$line" bytes)"
    report+=" $stage $(field "$line" seconds)s $(mib "$(field "$line" rss_kib)")MiB,"
  done
  echo "${report%,}" >&2
done

# Medians over runs of MB/s and seconds; the largest peak RSS over runs.
declare -A MB_S SEC RSS CPU
for stage in "${STAGES[@]}"; do
  mbs=() secs=()
  for s in ${SECONDS_OF[$stage]}; do
    secs+=("$s")
    mbs+=("$(rate "$(awk -v b="${BYTES_OF[$stage]}" 'BEGIN { print b / 1e6 }')" "$s")")
  done
  SEC[$stage]="$(median "${secs[@]}")"
  # shellcheck disable=SC2086 # a list of numbers
  CPU[$stage]="$(median ${CPU_OF[$stage]})"
  MB_S[$stage]="$(median "${mbs[@]}")"
  # shellcheck disable=SC2086 # a list of numbers
  RSS[$stage]="$(printf '%s\n' ${RSS_OF[$stage]} | sort -g | tail -n 1)"
done
best_consume=raw_consume_per_thread
for stage in raw_consume_per_partition raw_consume_split; do
  if awk -v a="${MB_S[$stage]}" -v b="${MB_S[$best_consume]}" 'BEGIN { exit !(a > b) }'; then best_consume=$stage; fi
done

echo
echo "Kafka benchmark: $BROKER_KIND broker $BROKERS, COUNT=$COUNT per worker, SEND_WORKERS=$SEND_WORKERS," \
  "RECV_WORKERS=$RECV_WORKERS, medians of $RUNS runs (peak RSS: the largest)"
echo "raw records: $FRAMES per partition x $size bytes (= capture_send bytes / (ceil(COUNT/1024)+$FRAME_EXTRA frames per worker))"
printf '%-26s %12s %12s %10s %10s %12s %8s\n' stage records bytes seconds MB/s "peak RSS MiB" "CPU s"
for stage in "${STAGES[@]}"; do
  printf '%-26s %12s %12s %10s %10.1f %12s %8s\n' "$stage" "${RECORDS_OF[$stage]}" "${BYTES_OF[$stage]}" \
    "${SEC[$stage]}" "${MB_S[$stage]}" "$(mib "${RSS[$stage]}")" "${CPU[$stage]}"
done
send_ratio="$(ratio "${MB_S[capture_send]}" "${MB_S[raw_produce_single]}")"
recv_ratio="$(ratio "${MB_S[capture_recv]}" "${MB_S[$best_consume]}")"
send_rss="$(mib "${RSS[capture_send]}")"
recv_rss="$(mib "${RSS[capture_recv]}")"
echo
echo "send: capture_send / raw_produce_single MB/s = $send_ratio (target >= 0.95)"
echo "recv: capture_recv / $best_consume (best raw consume) MB/s = $recv_ratio (target >= 0.9)"
echo "      capture_recv / raw_consume_checked (reads every byte: CRC-32C per record) MB/s =" \
  "$(ratio "${MB_S[capture_recv]}" "${MB_S[raw_consume_checked]}")"
echo "      capture_recv / raw_consume_decoded (CRC-32C, copy into Vec<u64>, sum per record) MB/s =" \
  "$(ratio "${MB_S[capture_recv]}" "${MB_S[raw_consume_decoded]}")"
echo "RSS:  capture_send ${send_rss} MiB / ${SEND_RSS_MIB} MiB = $(ratio "$send_rss" "$SEND_RSS_MIB"), " \
  "capture_recv ${recv_rss} MiB / ${RECV_RSS_MIB} MiB = $(ratio "$recv_rss" "$RECV_RSS_MIB") (target <= 1)"
echo "(records: u64 values for capture_*, Kafka records for raw_*; MB = 10^6 bytes)"
echo "bench_kafka: send_mb_s=${MB_S[capture_send]} recv_mb_s=${MB_S[capture_recv]}" \
  "raw_produce_mb_s=${MB_S[raw_produce_single]} raw_consume_mb_s=${MB_S[$best_consume]}" \
  "send_ratio=$send_ratio recv_ratio=$recv_ratio send_rss_mib=$send_rss recv_rss_mib=$recv_rss"
