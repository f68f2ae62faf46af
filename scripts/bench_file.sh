#!/usr/bin/env bash
# Benchmark the file backend against plain sequential I/O and against timely's
# own EventWriter/EventReader (benches/timely_baseline.rs).
#
#   scripts/bench_file.sh
#
# For each of RUNS runs it measures, in MB/s (10^6 bytes per second):
#   plain write / read   dd of as many bytes as capture_send wrote (page cache, no fsync)
#   send / recv          capture_send / capture_recv with the file backend
#   timely write / read  timely_baseline send / recv (EventWriter / EventReader on plain files)
# and prints the median of each plus the ratios of the medians.
#
# Environment: COUNT (records per send worker, default 10000000), SEND_WORKERS (4),
# RECV_WORKERS (2), RUNS (3), BENCH_DIR (parent of the temporary data, default
# target/bench; keep it on the disk you want to measure). The last line,
# `bench_file: key=value ...`, is for scripts (scripts/bench_scale.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT="${COUNT:-10000000}"
SEND_WORKERS="${SEND_WORKERS:-4}"
RECV_WORKERS="${RECV_WORKERS:-2}"
RUNS="${RUNS:-3}"
BENCH_DIR="${BENCH_DIR:-target/bench}"
TOPIC=bench
EXPECTED=$((COUNT * SEND_WORKERS))

cargo build --release --bins

SEND=target/release/capture_send
RECV=target/release/capture_recv
BASELINE="$(scripts/bench_target.sh timely_baseline)"

mkdir -p "$BENCH_DIR"
WORK="$(mktemp -d "$BENCH_DIR/run.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

die() {
  echo "bench_file: $*" >&2
  exit 1
}

now() { date +%s.%N; }

# field NAME LINE: the value of NAME=... in LINE.
field() {
  local value
  value="$(sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<<" $2")"
  [[ -n "$value" ]] || die "no '$1=' in: $2"
  echo "$value"
}

# run_last LABEL CMD...: runs CMD, echoes its output to stderr, prints its last stdout line.
run_last() {
  local label="$1" out
  shift
  out="$("$@")" || die "$label failed: $*"
  printf '%s\n' "$out" | grep -v '^replayed: ' >&2 || true
  printf '%s\n' "$out" | tail -n 1
}

# mbps BYTES SECONDS
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", b / 1e6 / s; else print 0 }'; }

declare -A RESULTS=()
add() { RESULTS[$1]="${RESULTS[$1]:-} $2"; }

for run in $(seq 1 "$RUNS"); do
  echo "== run $run/$RUNS ==" >&2
  D="$WORK/$run"
  mkdir -p "$D"

  # (b) timely-kafka file backend.
  line="$(run_last capture_send "$SEND" "$TOPIC" "$COUNT" -w "$SEND_WORKERS" --data-dir "$D/log" --overwrite)"
  sent_bytes="$(field bytes "$line")"
  add send "$(field mb_per_s "$line")"
  line="$(run_last capture_recv "$RECV" "$TOPIC" -w "$RECV_WORKERS" --data-dir "$D/log")"
  records="$(field records "$line")"
  [[ "$records" == "$EXPECTED" ]] || die "capture_recv replayed $records records, expected $EXPECTED"
  add recv "$(field mb_per_s "$line")"

  # (a) plain sequential write and read of as many bytes as capture_send wrote.
  blocks=$(((sent_bytes + 1048575) / 1048576))
  plain_bytes=$((blocks * 1048576))
  start="$(now)"
  dd if=/dev/zero of="$D/plain" bs=1M count="$blocks" status=none
  end="$(now)"
  write_mbps="$(mbps "$plain_bytes" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')")"
  start="$(now)"
  dd if="$D/plain" of=/dev/null bs=1M status=none
  end="$(now)"
  read_mbps="$(mbps "$plain_bytes" "$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')")"
  echo "plain: bytes=$plain_bytes write_mb_per_s=$write_mbps read_mb_per_s=$read_mbps" >&2
  add plain_write "$write_mbps"
  add plain_read "$read_mbps"

  # (c) timely's EventWriter / EventReader on plain files.
  line="$(run_last "timely_baseline send" "$BASELINE" send "$D/baseline" "$COUNT" -w "$SEND_WORKERS")"
  add timely_write "$(field mb_per_s "$line")"
  line="$(run_last "timely_baseline recv" "$BASELINE" recv "$D/baseline" "$SEND_WORKERS" -w "$RECV_WORKERS")"
  records="$(field records "$line")"
  [[ "$records" == "$EXPECTED" ]] || die "timely_baseline recv replayed $records records, expected $EXPECTED"
  add timely_read "$(field mb_per_s "$line")"

  rm -rf "$D"
done

python3 - "$COUNT" "$SEND_WORKERS" "$RECV_WORKERS" "$RUNS" \
  "${RESULTS[plain_write]}" "${RESULTS[plain_read]}" "${RESULTS[send]}" "${RESULTS[recv]}" \
  "${RESULTS[timely_write]}" "${RESULTS[timely_read]}" <<'EOF'
import statistics, sys

count, send_workers, recv_workers, runs = sys.argv[1:5]
names = ["plain write (dd)", "plain read (dd)", "capture_send", "capture_recv",
         "timely EventWriter", "timely EventReader"]
samples = [[float(x) for x in arg.split()] for arg in sys.argv[5:11]]
median = {name: statistics.median(values) for name, values in zip(names, samples)}

print(f"\nfile backend: COUNT={count} SEND_WORKERS={send_workers} RECV_WORKERS={recv_workers} RUNS={runs}")
print(f"{'measurement':<22}{'median MB/s':>12}   runs")
for name, values in zip(names, samples):
    print(f"{name:<22}{median[name]:>12.1f}   {' '.join(f'{v:.1f}' for v in values)}")

def ratio(a, b):
    return median[a] / median[b] if median[b] > 0 else float("nan")

print()
for label, a, b in [
    ("send / plain write", "capture_send", "plain write (dd)"),
    ("send / timely EventWriter", "capture_send", "timely EventWriter"),
    ("recv / timely EventReader", "capture_recv", "timely EventReader"),
    ("recv / plain read", "capture_recv", "plain read (dd)"),
]:
    print(f"{label:<28}{ratio(a, b):>7.2f}")
# For scripts (scripts/bench_scale.sh): one machine-readable line.
print(f"bench_file: send_mb_s={median['capture_send']:.1f} recv_mb_s={median['capture_recv']:.1f} "
      f"timely_write_mb_s={median['timely EventWriter']:.1f} timely_read_mb_s={median['timely EventReader']:.1f}")
EOF
