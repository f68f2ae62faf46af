#!/usr/bin/env bash
# Pipeline benchmark: word_count and average_temp on Apache Kafka, at least
# once and with --exactly-once, on the same input (medians of RUNS, each on
# a fresh output topic), with every process's peak RSS, and the exactly-once
# restart costs.
#
#   scripts/bench_pipeline.sh [KEY=VALUE ...]      (or set them in the environment)
#
#   BROKERS   Apache Kafka bootstrap servers. Default: $KAFKA_BROKERS, else
#             start scripts/kafka.sh (KAFKA_PORT, default 19392) and stop it on exit.
#   LINES     input lines for word_count (200000; written by kafka-python)
#   READINGS  readings for average_temp (300000; written by temp_gen)
#   WORKERS   timely workers (2)
#   RUNS      runs per mode; the table shows medians (3)
#   BUILD=0   use the examples already in target/release
#   HISTORY_SMALL, HISTORY_LARGE   input lines before the restarts of the
#             state section (100000 and 10000000; one 40-word vocabulary)
#   STATE_KEYS  distinct words of the restore measurement (1000000)
#   STEADY_LINES, STEADY_READINGS   inputs of the steady-state section
#             (2000000 and 3000000: ten times the first); STEADY=0 skips it
#   STEADY_RUNS  runs per mode there (3)
#   QUICK=1   throughput only: stop after the throughput sections (no
#             restart costs, no history or restore sections)
#
# word_count at least once = kafka_source -> count -> kafka_sink (acks=all,
# idempotent); exactly once = the same dataflow with the transactional sink
# (one transaction per commit, 500 ms commit interval) and the counts as
# declared state kept in the output topic itself (compacted: each output is
# the state's change, written once); exactly once --state-changelog = the
# counts in a separate changelog topic (each count written twice);
# exactly once --replay = the same without declared state. average_temp at
# least once only prints its buckets; exactly once also writes them through
# the transactional sink. Both read the input to its current end and stop.
# The first section is a new pipeline's first run on a small input: the
# exactly-once runs also pay their first start (creating the progress
# topic and any changelog, fencing). The steady-state section runs the
# same modes on ten times the input, where that fixed cost is small
# against the run: its ratios are the steady-state throughput.
# Restart costs, word_count exactly once:
#   start-up           a start on an empty input: the fixed cost of a run
#   restart-committed  a start on an output where everything is committed:
#                      fencing, the progress read, and the restore of the
#                      counts (nothing read from the input, nothing written)
#   restart-after-kill a run SIGKILLed at half the median run time, then the
#                      wall time of the restart that finishes the job
# Declared state (word_count's counts, restored from the output topic that
# keeps them; the sources seek to the binding):
#   restart-after-N    a start with nothing new to do after N input lines
#                      (HISTORY_SMALL, HISTORY_LARGE) of one vocabulary, so
#                      the same state: wall time and peak RSS; the ratio of
#                      the two should stay near 1
#   restart-replay-... the same after HISTORY_SMALL lines with --replay (no
#                      declared state: the input is read again)
#   restore            a start after STATE_KEYS distinct words: the
#                      output records, bytes, the restore's time
#                      (slowest worker) and records/s, peak RSS
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"

for arg in "$@"; do
  [[ $arg == *=* ]] || { echo "usage: $0 [KEY=VALUE ...]" >&2; exit 2; }
  export "${arg?}"
done
LINES="${LINES:-200000}"
READINGS="${READINGS:-300000}"
WORKERS="${WORKERS:-2}"
RUNS="${RUNS:-3}"
BROKERS="${BROKERS:-${KAFKA_BROKERS:-}}"
PY=target/interop-venv/bin/python
E="$TARGET/release/examples"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/bench_pipeline.XXXXXX")"

cleanup() {
  rm -rf "$TMP"
  if [[ -n "${STARTED_KAFKA:-}" ]]; then scripts/kafka.sh stop || true; fi
}
trap cleanup EXIT

fail() { echo "bench_pipeline: $*" >&2; exit 1; }

if [[ -z $BROKERS ]]; then
  export KAFKA_PORT="${KAFKA_PORT:-19392}"
  scripts/kafka.sh start >/dev/null
  STARTED_KAFKA=1
  BROKERS="$(scripts/kafka.sh bootstrap)"
fi
if ! "$PY" -c 'import kafka' 2>/dev/null; then
  python3 -m venv target/interop-venv && target/interop-venv/bin/pip install --quiet kafka-python
fi
if [[ "${BUILD:-1}" != 0 ]]; then
  cargo build --quiet --release --example word_count --example average_temp --example temp_gen --example lines_gen
fi

RUN="bench-$$-$(date +%s)"
# create_topic NAME PARTITIONS [compact]: compact = compacted, no retention
# (the output of word_count --exactly-once keeps its counts).
create_topic() {
  local configs="{}"
  if [[ ${3:-} == compact ]]; then
    configs="{'cleanup.policy': 'compact', 'retention.ms': '-1', 'retention.bytes': '-1'}"
  fi
  "$PY" -c "import sys; sys.path.insert(0, 'tests/interop'); from kafka_client import create_topic; create_topic('$BROKERS', '$1', $2, $configs)"
}

# Runs a command under /usr/bin/time; sets SECONDS_TAKEN and RSS_MIB.
measure() {
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -v -o "$TMP/time" "$@" >"$TMP/out" 2>"$TMP/err" || fail "'$*' failed: $(tail -n 1 "$TMP/err")"
  end=$(date +%s.%N)
  SECONDS_TAKEN=$(echo "$end - $start" | bc -l)
  RSS_MIB=$(awk '/Maximum resident/ {printf "%.0f", $NF / 1024}' "$TMP/time")
}

median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "bench_pipeline: brokers $BROKERS, $WORKERS workers, $RUNS runs per mode" >&2

# bench MODE_NAME INPUT_RECORDS INPUT_BYTES COMMAND... (OUT in the command is replaced by a fresh topic,
# compacted with COMPACT=1)
declare -A SECS RSS
bench() {
  local name=$1 records=$2 bytes=$3
  shift 3
  local secs=() rss=() run
  for run in $(seq "$RUNS"); do
    local out="$RUN-$name-$run" args=()
    create_topic "$out" 2 ${COMPACT:+compact}
    for a in "$@"; do args+=("${a//OUT/$out}"); done
    measure "${args[@]}"
    secs+=("$SECONDS_TAKEN")
    rss+=("$RSS_MIB")
    LAST_OUT=$out
  done
  SECS[$name]=$(printf '%s\n' "${secs[@]}" | median)
  RSS[$name]=$(printf '%s\n' "${rss[@]}" | median)
  printf '%-30s %8.2f s %10.0f rec/s %7.2f MB/s %6s MiB peak RSS\n' "$name" "${SECS[$name]}" \
    "$(echo "$records / ${SECS[$name]}" | bc -l)" "$(echo "$bytes / ${SECS[$name]} / 1000000" | bc -l)" "${RSS[$name]}"
}
ratio() { echo "${SECS[$1]} / ${SECS[$2]}" | bc -l; }

# throughput PREFIX LINES READINGS: writes both inputs, runs every mode on
# them (mode names begin with PREFIX) and prints the ratios; sets WC.
throughput() {
  local p=$1 lines=$2 readings=$3 line_bytes
  create_topic "$RUN-${p}lines" 2
  line_bytes=$("$PY" tests/interop/chaos_words.py produce "$BROKERS" "$RUN-${p}lines" "$lines" 5000 0 1 | awk '{print $4}')
  "$E/temp_gen" --brokers "$BROKERS" --topic "$RUN-${p}temps" --count "$readings" --rate 0 -w 2 >/dev/null
  local temp_bytes=$((readings * 16))
  echo "${p:-first run: }word_count: $lines lines ($line_bytes bytes) in 2 partitions; average_temp: $readings readings in 3 partitions"
  WC=("$E/word_count" --brokers "$BROKERS" --input "$RUN-${p}lines" --output OUT -w "$WORKERS")
  local at=("$E/average_temp" --brokers "$BROKERS" --topic "$RUN-${p}temps" -w "$WORKERS")
  bench "${p}word_count-alo" "$lines" "$line_bytes" "${WC[@]}"
  COMPACT=1 bench "${p}word_count-eo" "$lines" "$line_bytes" "${WC[@]}" --exactly-once
  EO_OUT=$LAST_OUT
  bench "${p}word_count-eo-changelog" "$lines" "$line_bytes" "${WC[@]}" --exactly-once --state-changelog
  bench "${p}word_count-eo-replay" "$lines" "$line_bytes" "${WC[@]}" --exactly-once --replay
  bench "${p}average_temp-alo" "$readings" "$temp_bytes" "${at[@]}"
  bench "${p}average_temp-eo" "$readings" "$temp_bytes" "${at[@]}" --exactly-once --output OUT
  printf '%sthroughput ratio exactly-once / at-least-once: word_count %.2f (state in a separate changelog: %.2f; --replay, no state: %.2f), average_temp %.2f\n' \
    "$p" "$(ratio "${p}word_count-alo" "${p}word_count-eo")" "$(ratio "${p}word_count-alo" "${p}word_count-eo-changelog")" \
    "$(ratio "${p}word_count-alo" "${p}word_count-eo-replay")" "$(ratio "${p}average_temp-alo" "${p}average_temp-eo")"
}

throughput "" "$LINES" "$READINGS"
SUMMARY="word_count_ratio=$(ratio word_count-alo word_count-eo) average_temp_ratio=$(ratio average_temp-alo average_temp-eo)"
if [[ "${STEADY:-1}" != 0 ]]; then
  first_runs=$RUNS
  RUNS="${STEADY_RUNS:-3}"
  WC_FIRST=("${WC[@]}") EO_FIRST=$EO_OUT
  throughput steady- "${STEADY_LINES:-2000000}" "${STEADY_READINGS:-3000000}"
  WC=("${WC_FIRST[@]}") EO_OUT=$EO_FIRST
  RUNS=$first_runs
  SUMMARY+=" steady_word_count_ratio=$(ratio steady-word_count-alo steady-word_count-eo)"
  SUMMARY+=" steady_average_temp_ratio=$(ratio steady-average_temp-alo steady-average_temp-eo)"
fi
if [[ "${QUICK:-0}" != 0 ]]; then
  echo "bench_pipeline: $SUMMARY (QUICK: throughput only)"
  exit 0
fi

# Restart costs.
startups=()
for run in $(seq "$RUNS"); do
  create_topic "$RUN-empty-$run" 2
  measure "$E/word_count" --brokers "$BROKERS" --input "$RUN-empty-$run" --output "$RUN-empty-$run-out" -w "$WORKERS" \
    --exactly-once
  startups+=("$SECONDS_TAKEN")
done
printf '%-22s %8.2f s (empty input: transaction timeout check, fencing, aborted probe, progress read)\n' \
  start-up "$(printf '%s\n' "${startups[@]}" | median)"
restarts=()
for _ in $(seq "$RUNS"); do
  measure "${WC[@]/OUT/$EO_OUT}" --exactly-once
  restarts+=("$SECONDS_TAKEN")
done
printf '%-22s %8.2f s (fence, progress read, restore the counts of %s lines, nothing read or written)\n' \
  restart-committed "$(printf '%s\n' "${restarts[@]}" | median)" "$LINES"
restarts=()
half=$(echo "${SECS[word_count-eo]} / 2" | bc -l)
for run in $(seq "$RUNS"); do
  out="$RUN-killed-$run"
  create_topic "$out" 2 compact
  "${WC[@]/OUT/$out}" --exactly-once >/dev/null 2>&1 &
  pid=$!
  sleep "$half"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  measure "${WC[@]/OUT/$out}" --exactly-once
  restarts+=("$SECONDS_TAKEN")
done
printf '%-22s %8.2f s (killed at %.1f s, then the restart that finishes the job)\n' restart-after-kill \
  "$(printf '%s\n' "${restarts[@]}" | median)" "$half"
echo "bench_pipeline: $SUMMARY"

# Declared state: restart cost against history, restore of a large state.
HISTORY_SMALL="${HISTORY_SMALL:-100000}"
HISTORY_LARGE="${HISTORY_LARGE:-10000000}"
STATE_KEYS="${STATE_KEYS:-1000000}"
# history NAME LINES [lines_gen args]: writes LINES lines, runs word_count
# --exactly-once over them once, then RUNS restarts with nothing new to do.
history() {
  local name=$1 lines=$2 topic="$RUN-history-$1"
  shift 2
  "$E/lines_gen" --brokers "$BROKERS" --topic "$topic" --lines "$lines" "$@" >/dev/null
  create_topic "$topic-out" 2 "${REPLAY:-compact}"
  local wc=("$E/word_count" --brokers "$BROKERS" --input "$topic" --output "$topic-out" -w "$WORKERS" --exactly-once
    ${REPLAY:+--replay})
  measure "${wc[@]}"
  local secs=() rss=() run
  for run in $(seq "$RUNS"); do
    measure "${wc[@]}"
    secs+=("$SECONDS_TAKEN")
    rss+=("$RSS_MIB")
  done
  SECS[$name]=$(printf '%s\n' "${secs[@]}" | median)
  RSS[$name]=$(printf '%s\n' "${rss[@]}" | median)
}
history restart-after-small "$HISTORY_SMALL"
history restart-after-large "$HISTORY_LARGE"
REPLAY=1 history restart-replay-small "$HISTORY_SMALL"
for name in restart-after-small restart-after-large restart-replay-small; do
  case $name in
    *large) lines=$HISTORY_LARGE ;;
    *) lines=$HISTORY_SMALL ;;
  esac
  printf '%-22s %8.2f s %6s MiB peak RSS (nothing new after %s lines)\n' "$name" "${SECS[$name]}" "${RSS[$name]}" "$lines"
done
history restore "$STATE_KEYS" --unique
# The restore's own lines in the last restart: per worker keys, records, bytes, seconds.
read -r keys records bytes slowest < <(awk '/restored .* counts from/ {
    k += $5; r += $8; b += substr($11, 2); s = substr($14, 1, length($14) - 1) + 0; if (s > m) m = s }
  END {printf "%d %d %d %.3f\n", k, r, b, (m > 0.001 ? m : 0.001)}' "$TMP/err")
printf '%-22s %8.2f s restart, restore %.3f s (slowest worker): %d keys from %d changelog records, %d bytes, %.0f records/s, %s MiB peak RSS\n' \
  restore "${SECS[restore]}" "$slowest" "$keys" "$records" "$bytes" "$(echo "$records / $slowest" | bc -l)" "${RSS[restore]}"
echo "bench_pipeline: restart_large_over_small=$(ratio restart-after-large restart-after-small) restore_seconds=$slowest restore_records_per_s=$(echo "$records / $slowest" | bc -l)"
