#!/usr/bin/env bash
# Latency, measured (docs/benchmarks.md, "Latency").
#
#   scripts/bench_latency.sh [file|kafka|pipeline]...   (default: all three)
#
# file, kafka: a live capture_recv follows a rate-limited capture_send
#   (RATE numbers per second, RECORDS_PER_TIME numbers per timely time, so a
#   time closes every RECORDS_PER_TIME/RATE seconds), plain and
#   --exactly-once (commit interval COMMIT_MS). With TIMELY_KAFKA_TIMES_LOG
#   each program notes when it first saw data at each time (capture_send:
#   generated; capture_recv: delivered to its dataflow); the delay of a time
#   is the difference (one machine, one clock). Prints p50/p99/max in ms.
# pipeline: temp_gen writes WC_RATE lines per second into a topic that
#   `word_count --exactly-once --live` counts (1 s event-time buckets) with
#   --commit-interval-ms C for C in WC_COMMITS; the pipeline's own histogram
#   timely_kafka_pipeline_end_to_end_seconds (input record's Kafka timestamp
#   to the commit that made its output visible), scraped at the end, gives
#   p50/p99 (interpolated in its buckets, as Prometheus' histogram_quantile).
#
# Environment: COUNT (numbers per capture, 20000), RATE (2000),
# RECORDS_PER_TIME (20), COMMIT_MS (100), BROKERS (default $KAFKA_BROKERS;
# needed for kafka and pipeline), WC_RATE (1000), WC_SECONDS (20),
# WC_COMMITS ("200 1000"). Binaries: $CARGO_TARGET_DIR/release (built unless
# BUILD=0).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT="${COUNT:-20000}"
RATE="${RATE:-2000}"
RECORDS_PER_TIME="${RECORDS_PER_TIME:-20}"
COMMIT_MS="${COMMIT_MS:-100}"
BROKERS="${BROKERS:-${KAFKA_BROKERS:-}}"
WC_RATE="${WC_RATE:-1000}"
WC_SECONDS="${WC_SECONDS:-20}"
WC_COMMITS="${WC_COMMITS:-200 1000}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/release"
MODES=("$@")
[[ ${#MODES[@]} -gt 0 ]] || MODES=(file kafka pipeline)

if [[ "${BUILD:-1}" != 0 ]]; then
  cargo build --release --quiet --bins --example word_count --example temp_gen
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/bench_latency.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# percentiles FILE...: "p50=.. p99=.. max=.. n=.." of the numbers in FILE (ms).
percentiles() {
  python3 - "$@" <<'PY'
import sys
values = sorted(float(v) for f in sys.argv[1:] for v in open(f).read().split())
if not values:
    sys.exit("no samples")
pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
print(f"p50={pick(0.5):.1f}ms p99={pick(0.99):.1f}ms max={values[-1]:.1f}ms n={len(values)}")
PY
}

# delays SEND RECV OUT: per time seen by both, recv - send in ms.
delays() {
  python3 - "$1" "$2" > "$3" <<'PY'
import sys
read = lambda f: dict(map(int, line.split()) for line in open(f) if line.strip())
send, recv = read(sys.argv[1]), read(sys.argv[2])
for time in sorted(set(send) & set(recv)):
    print((recv[time] - send[time]) / 1e6)
PY
}

# capture_latency LABEL LOGARGS... : one rate-limited capture followed live.
capture_latency() {
  local label="$1" topic="lat-$RANDOM-$$" mode
  shift
  for mode in plain exactly-once; do
    local extra=() send_log="$WORK/$topic-$mode.send" recv_log="$WORK/$topic-$mode.recv"
    [[ $mode == exactly-once ]] && extra=(--exactly-once --commit-interval-ms "$COMMIT_MS")
    TIMELY_KAFKA_TIMES_LOG="$send_log" "$BIN/capture_send" "$topic-$mode" "$COUNT" --rate "$RATE" \
      --records-per-time "$RECORDS_PER_TIME" "${extra[@]}" "$@" >/dev/null 2>"$WORK/send.err" &
    local send_pid=$!
    PIDS+=("$send_pid")
    # The replay starts once the capture has created its topic.
    local tries=0
    until TIMELY_KAFKA_TIMES_LOG="$recv_log" "$BIN/capture_recv" "$topic-$mode" 1 --idle-timeout 30 "$@" \
      >/dev/null 2>"$WORK/recv.err"; do
      tries=$((tries + 1))
      ((tries < 50)) || { cat "$WORK/recv.err" >&2; exit 1; }
      sleep 0.1
    done
    wait "$send_pid"
    delays "$send_log" "$recv_log" "$WORK/delays"
    echo "bench_latency: $label $mode rate=$RATE/s time=every $((RECORDS_PER_TIME * 1000 / RATE))ms: $(percentiles "$WORK/delays")"
  done
}

# p50/p99 of a Prometheus histogram in a scrape (histogram_quantile's interpolation).
quantiles() {
  python3 - "$1" "$2" <<'PY'
import sys
name, text = sys.argv[1], open(sys.argv[2]).read()
buckets = {}
for line in text.splitlines():
    if line.startswith(name + "_bucket{"):
        le = line.split('le="')[1].split('"')[0]
        buckets[float("inf") if le == "+Inf" else float(le)] = buckets.get(le, 0) + float(line.rsplit(" ", 1)[1])
bounds = sorted(buckets)
total = buckets[bounds[-1]] if bounds else 0
if not total:
    sys.exit("no samples of " + name)
def quantile(q):
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(buckets[bound] - below, 1e-9)
        lower, below = bound, buckets[bound]
print(f"p50={quantile(0.5) * 1000:.0f}ms p99={quantile(0.99) * 1000:.0f}ms n={int(total)}")
PY
}

pipeline_latency() {
  local run="wclat-$RANDOM-$$" commit port
  for commit in $WC_COMMITS; do
    port=$((20000 + RANDOM % 20000))
    "$BIN/examples/word_count" --brokers "$BROKERS" --input "$run-$commit-in" --output "$run-$commit-out" \
      --exactly-once --live --idle-exit 5 --commit-interval-ms "$commit" \
      --metrics-addr "127.0.0.1:$port" --metrics-linger 60 >"$WORK/wc.out" 2>"$WORK/wc.err" &
    local wc_pid=$!
    PIDS+=("$wc_pid")
    "$BIN/examples/temp_gen" --brokers "$BROKERS" --topic "$run-$commit-in" --partitions 2 \
      --count $((WC_RATE * WC_SECONDS)) --rate "$WC_RATE" >/dev/null
    # Scraped 3 s after the last line (bucket + commit interval), before
    # word_count's idle exit (5 s) closes the last bucket: a bucket that
    # closes only because the input stopped is not the latency of a live run.
    sleep 3
    python3 -c "import urllib.request; open('$WORK/scrape','w').write(urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode())"
    local tries=0
    until grep -q "written=" "$WORK/wc.out"; do
      tries=$((tries + 1))
      if ((tries > 1200)) || ! kill -0 "$wc_pid" 2>/dev/null; then
        echo "bench_latency: word_count did not finish" >&2
        cat "$WORK/wc.err" >&2
        exit 1
      fi
      sleep 0.1
    done
    kill "$wc_pid" 2>/dev/null || true
    wait "$wc_pid" 2>/dev/null || true
    echo "bench_latency: word_count --exactly-once --live rate=$WC_RATE/s commit_interval=${commit}ms" \
      "end-to-end: $(quantiles timely_kafka_pipeline_end_to_end_seconds "$WORK/scrape")"
  done
}

for mode in "${MODES[@]}"; do
  case $mode in
    file) capture_latency file --data-dir "$WORK/log" ;;
    kafka)
      [[ -n $BROKERS ]] || { echo "bench_latency: kafka needs BROKERS" >&2; exit 2; }
      capture_latency kafka --brokers "$BROKERS"
      ;;
    pipeline)
      [[ -n $BROKERS ]] || { echo "bench_latency: pipeline needs BROKERS" >&2; exit 2; }
      pipeline_latency
      ;;
    *) echo "bench_latency: unknown mode '$mode'" >&2; exit 2 ;;
  esac
done
