#!/usr/bin/env bash
# Compression for captures: capture_send with -X compression.type=CODEC
# against the same capture uncompressed (the baseline, `none`), on Apache
# Kafka started here (scripts/kafka.sh, one node, data under target/). Per
# codec, the medians over RUNS runs of: the bytes the broker stores (the
# partitions' segment files), capture_send's MB/s (of uncompressed frame
# bytes) and CPU seconds, capture_recv's MB/s (the replay must be exact: its
# count and sum are checked), and the peak RSS of both. Ratios are against
# `none`. The last line, `bench_compression: codec=... ...` per codec, is for
# scripts.
#
#   scripts/bench_compression.sh [KEY=VALUE ...]   (or set them in the environment)
#
#   CODECS        codecs to compare with none (default "lz4 zstd gzip snappy")
#   COUNT         numbers captured per worker (5000000: 40 MB)
#   WORKERS       capture_send workers = partitions (2); capture_recv uses 2
#   RUNS          runs per codec (3)
#   KAFKA_BENCH_PORT  the broker's port (19293)
#   BUILD=0       use the binaries already in target/release
set -euo pipefail
cd "$(dirname "$0")/.."

for arg in "$@"; do
  case "$arg" in
    CODECS=* | COUNT=* | WORKERS=* | RUNS=* | KAFKA_BENCH_PORT=* | BUILD=*) export "${arg?}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_compression.sh: unknown argument '$arg' (expected KEY=VALUE)" >&2; exit 2 ;;
  esac
done
CODECS="${CODECS:-lz4 zstd gzip snappy}"
COUNT="${COUNT:-5000000}"
WORKERS="${WORKERS:-2}"
RUNS="${RUNS:-3}"
KAFKA_BENCH_PORT="${KAFKA_BENCH_PORT:-19293}"
for name in COUNT WORKERS RUNS; do
  [[ "${!name}" =~ ^[1-9][0-9]*$ ]] || { echo "bench_compression.sh: $name must be a positive integer" >&2; exit 2; }
done

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/release"
WORK="$TARGET_DIR/bench-compression"
KAFKA_DATA="$TARGET_DIR/bench-compression-kafka"
TIME=/usr/bin/time
[[ -x "$TIME" ]] || { echo "bench_compression.sh: needs GNU time at $TIME" >&2; exit 1; }
mkdir -p "$WORK"
if [[ "${BUILD:-1}" != 0 ]]; then
  echo "bench_compression.sh: building release binaries" >&2
  cargo build --release --quiet --bins
fi

kafka() { KAFKA_DIR="$KAFKA_DATA" KAFKA_PORT="$KAFKA_BENCH_PORT" scripts/kafka.sh "$@"; }
trap 'kafka stop || true' EXIT
BROKERS="$(kafka start)"

# run NAME CMD...: runs CMD under GNU time; prints its summary line with
# rss_kib= and cpu_s= appended, or fails with its log.
run() {
  local name="$1"
  shift
  if ! "$TIME" -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"; then
    echo "bench_compression.sh: '$*' failed:" >&2
    tail -n 5 "$WORK/$name.err" >&2
    exit 1
  fi
  local rss cpu
  rss="$(sed -n 's/.*Maximum resident set size (kbytes): *\([0-9]*\).*/\1/p' "$WORK/$name.time")"
  cpu="$(awk -F': ' '/User time|System time/ { s += $2 } END { printf "%.2f", s }' "$WORK/$name.time")"
  echo "$(grep -E '^capture_(send|recv):' "$WORK/$name.out" | tail -n 1) rss_kib=$rss cpu_s=$cpu"
}
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

# The workers capture 0..COUNT*WORKERS between them, so the replay's sum is known.
want_records=$((COUNT * WORKERS))
want_sum=$((want_records * (want_records - 1) / 2))

declare -A stored send_mbs send_cpu recv_mbs rss
for codec in none $CODECS; do
  s_bytes=() s_mbs=() s_cpu=() r_mbs=() peak=()
  for n in $(seq 1 "$RUNS"); do
    topic="bench-compression-$codec-$n-$$"
    send="$(run "send-$codec-$n" "$BIN/capture_send" "$topic" "$COUNT" -w "$WORKERS" --brokers "$BROKERS" \
      -X "compression.type=$codec")"
    recv="$(run "recv-$codec-$n" "$BIN/capture_recv" "$topic" "$WORKERS" -w 2 --brokers "$BROKERS")"
    if [[ "$(field "$recv" records)" != "$want_records" || "$(field "$recv" sum)" != "$want_sum" ]]; then
      echo "bench_compression.sh: $codec run $n replayed '$recv', want records=$want_records sum=$want_sum" >&2
      exit 1
    fi
    s_bytes+=("$(cat "$KAFKA_DATA"/node1/data/"$topic"-*/*.log | wc -c)")
    s_mbs+=("$(field "$send" mb_per_s)")
    s_cpu+=("$(field "$send" cpu_s)")
    r_mbs+=("$(field "$recv" mb_per_s)")
    peak+=("$(field "$send" rss_kib)" "$(field "$recv" rss_kib)")
  done
  stored[$codec]="$(median "${s_bytes[@]}")"
  send_mbs[$codec]="$(median "${s_mbs[@]}")"
  send_cpu[$codec]="$(median "${s_cpu[@]}")"
  recv_mbs[$codec]="$(median "${r_mbs[@]}")"
  rss[$codec]="$(printf '%s\n' "${peak[@]}" | sort -g | tail -n 1)"
done

echo
echo "Captures of $COUNT u64 per worker, $WORKERS workers, on $BROKERS (medians of $RUNS runs)"
printf '%-8s %14s %8s %10s %8s %10s %8s %9s %9s\n' codec "broker bytes" "vs none" "send MB/s" "vs none" \
  "recv MB/s" "vs none" "send cpu" "peak MiB"
for codec in none $CODECS; do
  printf '%-8s %14s %8s %10s %8s %10s %8s %9s %9s\n' "$codec" "${stored[$codec]}" \
    "$(ratio "${stored[$codec]}" "${stored[none]}")" "${send_mbs[$codec]}" \
    "$(ratio "${send_mbs[$codec]}" "${send_mbs[none]}")" "${recv_mbs[$codec]}" \
    "$(ratio "${recv_mbs[$codec]}" "${recv_mbs[none]}")" "${send_cpu[$codec]}" "$((${rss[$codec]} / 1024))"
done
for codec in none $CODECS; do
  echo "bench_compression: codec=$codec stored_bytes=${stored[$codec]} send_mb_per_s=${send_mbs[$codec]}" \
    "send_cpu_s=${send_cpu[$codec]} recv_mb_per_s=${recv_mbs[$codec]} peak_rss_kib=${rss[$codec]}"
done
