#!/usr/bin/env bash
# Interop with independent Kafka clients: kafka-python (pure Python, its own
# protocol implementation, no librdkafka) and Apache Kafka's Java console
# tools (ConsoleProducer, ConsoleConsumer; the jars scripts/kafka.sh installs)
# write the topics the examples read with kafka_source, and read back what
# word_count wrote with kafka_sink.
#
#   scripts/interop.sh BROKERS      e.g. scripts/interop.sh 127.0.0.1:19092
#
# Checks, on fresh topics (so it can run again against the same broker):
#   average_temp  per-second buckets, counts, averages and bad records equal
#                 what kafka-python wrote (tests/interop/temps.py)
#   word_count    reads every line kafka-python wrote; kafka-python reads its
#                 output topic back and finds each word's count (words.py)
#   the same two with the Java producer writing and the Java consumer reading
#   (average_temp's buckets then come from the timestamps the broker stored:
#   the console producer cannot choose them). INTEROP_JAVA=0 leaves them out.
# Through a secured listener: INTEROP_CLIENT_PROPERTIES names a librdkafka
# properties file (the examples get each line as -X, kafka-python the same
# settings) and INTEROP_JAVA_PROPERTIES the Java clients' one; scripts/kafka.sh
# start --secure writes both (client-sasl-ssl.properties, java-sasl-ssl.properties).
# Exits non-zero with a one-line reason (interop: FAIL: ...) on any mismatch
# or error; the Python checks print their own. The venv lives in
# target/interop-venv (created, and kafka-python installed, when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "interop: FAIL: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $0 BROKERS" >&2; exit 2; }
BROKERS=$1
VENV=target/interop-venv
PY="$VENV/bin/python"

if ! "$PY" -c 'import kafka' 2>/dev/null; then
  echo "interop: creating $VENV with kafka-python" >&2
  python3 -m venv "$VENV" || fail "python3 -m venv $VENV failed"
  "$VENV/bin/pip" install --quiet kafka-python || fail "pip install kafka-python failed"
fi
echo "interop: kafka-python $("$PY" -c 'import kafka; print(kafka.__version__)')" >&2

# The examples' -X arguments from INTEROP_CLIENT_PROPERTIES (none when unset).
X=()
if [[ -n "${INTEROP_CLIENT_PROPERTIES:-}" ]]; then
  [[ -r "$INTEROP_CLIENT_PROPERTIES" ]] || fail "cannot read INTEROP_CLIENT_PROPERTIES=$INTEROP_CLIENT_PROPERTIES"
  while IFS= read -r line; do
    [[ -n "$line" && "$line" != \#* ]] && X+=(-X "$line")
  done <"$INTEROP_CLIENT_PROPERTIES"
  export INTEROP_CLIENT_PROPERTIES
  echo "interop: client properties from $INTEROP_CLIENT_PROPERTIES" >&2
fi
# The Java tools' client configuration file, if any.
if [[ -n "${INTEROP_JAVA_PROPERTIES:-}" ]]; then
  [[ -r "$INTEROP_JAVA_PROPERTIES" ]] || fail "cannot read INTEROP_JAVA_PROPERTIES=$INTEROP_JAVA_PROPERTIES"
fi

cargo build --quiet --examples || fail "cargo build --examples failed"
E=target/debug/examples
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RUN="interop-$$-$(date +%s)"

# The temperature example: kafka-python writes, average_temp (kafka_source, two workers) reads.
"$PY" tests/interop/temps.py produce "$BROKERS" "$RUN-temps"
"$E/average_temp" --brokers "$BROKERS" ${X[@]+"${X[@]}"} --topic "$RUN-temps" -w 2 >"$OUT/average_temp" 2>"$OUT/average_temp.err" \
  || fail "average_temp failed: $(tail -n 1 "$OUT/average_temp.err")"
"$PY" tests/interop/temps.py check <"$OUT/average_temp"

# The word-count example: kafka-python writes lines, word_count reads them
# (kafka_source) and writes counts (kafka_sink), kafka-python reads those.
"$PY" tests/interop/words.py produce "$BROKERS" "$RUN-lines"
"$E/word_count" --brokers "$BROKERS" ${X[@]+"${X[@]}"} --input "$RUN-lines" --output "$RUN-counts" -w 2 \
  >"$OUT/word_count" 2>"$OUT/word_count.err" || fail "word_count failed: $(tail -n 1 "$OUT/word_count.err")"
"$PY" tests/interop/words.py check "$BROKERS" "$RUN-counts" <"$OUT/word_count"

if [[ "${INTEROP_JAVA:-1}" == 1 ]]; then
  java_tool() { scripts/kafka.sh run "$@"; }
  # Kafka 4.1's tools name the client properties file three ways.
  TOPIC_CONFIG=() PRODUCER_CONFIG=() CONSUMER_CONFIG=()
  if [[ -n "${INTEROP_JAVA_PROPERTIES:-}" ]]; then
    TOPIC_CONFIG=(--command-config "$INTEROP_JAVA_PROPERTIES")
    PRODUCER_CONFIG=(--producer.config "$INTEROP_JAVA_PROPERTIES")
    CONSUMER_CONFIG=(--consumer.config "$INTEROP_JAVA_PROPERTIES")
    echo "interop: Java client properties from $INTEROP_JAVA_PROPERTIES" >&2
  fi
  java_topic() {
    java_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BROKERS" --create --topic "$1" --partitions 3 \
      ${TOPIC_CONFIG[@]+"${TOPIC_CONFIG[@]}"} >/dev/null || fail "the Java TopicCommand could not create $1"
  }
  java_produce() {
    java_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BROKERS" --topic "$1" \
      --producer-property acks=all ${PRODUCER_CONFIG[@]+"${PRODUCER_CONFIG[@]}"} "${@:2}" || fail "the Java ConsoleProducer failed writing $1"
  }
  # Reads $1 from the beginning until $2 records arrived (or 20 s without one).
  java_consume() {
    java_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BROKERS" --topic "$1" \
      --from-beginning --max-messages "$2" --timeout-ms 20000 --isolation-level read_committed ${CONSUMER_CONFIG[@]+"${CONSUMER_CONFIG[@]}"} "${@:3}" \
      2>"$OUT/java_consume.err" || fail "the Java ConsoleConsumer failed reading $1: $(tail -n 1 "$OUT/java_consume.err")"
  }
  echo "interop: Apache Kafka's Java console tools ($(scripts/kafka.sh install))" >&2

  "$PY" tests/interop/temps.py lines >"$OUT/temps.lines"
  java_topic "$RUN-jtemps"
  java_produce "$RUN-jtemps" --property parse.key=true --property 'key.separator=|' <"$OUT/temps.lines"
  java_consume "$RUN-jtemps" "$(wc -l <"$OUT/temps.lines")" --property print.timestamp=true >"$OUT/jtemps.stored"
  "$E/average_temp" --brokers "$BROKERS" ${X[@]+"${X[@]}"} --topic "$RUN-jtemps" -w 2 >"$OUT/javerage_temp" 2>"$OUT/javerage_temp.err" \
    || fail "average_temp (Java-written input) failed: $(tail -n 1 "$OUT/javerage_temp.err")"
  "$PY" tests/interop/temps.py check-stored "$OUT/jtemps.stored" <"$OUT/javerage_temp"

  "$PY" tests/interop/words.py lines >"$OUT/words.lines"
  java_topic "$RUN-jlines"
  java_produce "$RUN-jlines" <"$OUT/words.lines"
  "$E/word_count" --brokers "$BROKERS" ${X[@]+"${X[@]}"} --input "$RUN-jlines" --output "$RUN-jcounts" -w 2 \
    >"$OUT/jword_count" 2>"$OUT/jword_count.err" || fail "word_count (Java-written input) failed: $(tail -n 1 "$OUT/jword_count.err")"
  written=$(sed -n 's/^word_count:.* written=\([0-9]*\).*/\1/p' "$OUT/jword_count" | tail -n 1)
  java_consume "$RUN-jcounts" "${written:-1}" --property print.key=true --property key.separator=$'\t' >"$OUT/jcounts.read"
  "$PY" tests/interop/words.py check-read "$OUT/jcounts.read" <"$OUT/jword_count"
fi

echo "interop: ok"
