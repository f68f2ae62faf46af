#!/usr/bin/env bash
# Interop with an independent Kafka client: kafka-python (pure Python, its own
# protocol implementation, no librdkafka) writes the topics the examples read
# with kafka_source, and reads back what word_count wrote with kafka_sink.
#
#   scripts/interop.sh BROKERS      e.g. scripts/interop.sh 127.0.0.1:19092
#
# Checks, on fresh topics (so it can run again against the same broker):
#   average_temp  per-second buckets, counts, averages and bad records equal
#                 what kafka-python wrote (tests/interop/temps.py)
#   word_count    reads every line kafka-python wrote; kafka-python reads its
#                 output topic back and finds each word's count (words.py)
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

cargo build --quiet --examples || fail "cargo build --examples failed"
E=target/debug/examples
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
RUN="interop-$$-$(date +%s)"

# The temperature example: kafka-python writes, average_temp (kafka_source, two workers) reads.
"$PY" tests/interop/temps.py produce "$BROKERS" "$RUN-temps"
"$E/average_temp" --brokers "$BROKERS" --topic "$RUN-temps" -w 2 >"$OUT/average_temp" 2>"$OUT/average_temp.err" \
  || fail "average_temp failed: $(tail -n 1 "$OUT/average_temp.err")"
"$PY" tests/interop/temps.py check <"$OUT/average_temp"

# The word-count example: kafka-python writes lines, word_count reads them
# (kafka_source) and writes counts (kafka_sink), kafka-python reads those.
"$PY" tests/interop/words.py produce "$BROKERS" "$RUN-lines"
"$E/word_count" --brokers "$BROKERS" --input "$RUN-lines" --output "$RUN-counts" -w 2 \
  >"$OUT/word_count" 2>"$OUT/word_count.err" || fail "word_count failed: $(tail -n 1 "$OUT/word_count.err")"
"$PY" tests/interop/words.py check "$BROKERS" "$RUN-counts" <"$OUT/word_count"

echo "interop: ok"
