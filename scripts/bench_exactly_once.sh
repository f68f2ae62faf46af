#!/usr/bin/env bash
# What exactly-once capture costs: capture_send with and without
# --exactly-once on the same stream (number i at time i / PER_TIME, so the
# frontier advances every batch and commits are due every commit interval),
# alternating, RUNS times; prints medians, the ratio, and the peak RSS of the
# replays (an exactly-once replay re-reads uncommitted data instead of
# holding it, so its memory does not grow with the stream).
#
#   scripts/bench_exactly_once.sh                          file log under target/bench-eo
#   BROKERS=127.0.0.1:9092 scripts/bench_exactly_once.sh   Kafka (topics created there)
#
# Environment: COUNT (numbers per worker, 5000000), WORKERS (4), RECV_WORKERS (2),
# PER_TIME (1024), RUNS (3), BROKERS (unset: file log).
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT="${COUNT:-5000000}"
WORKERS="${WORKERS:-4}"
RECV_WORKERS="${RECV_WORKERS:-2}"
PER_TIME="${PER_TIME:-1024}"
RUNS="${RUNS:-3}"
WORK="target/bench-eo"
mkdir -p "$WORK"

cargo build --release --quiet --bins
SEND=target/release/capture_send
RECV=target/release/capture_recv

if [[ -n "${BROKERS:-}" ]]; then
  target=(--brokers "$BROKERS")
else
  target=(--data-dir "$WORK/log")
  trap 'rm -rf "$WORK/log"' EXIT
fi

# Runs a command under /usr/bin/time; prints "<mb_per_s> <peak RSS MiB>".
measure() {
  local out="$WORK/out" time="$WORK/time"
  /usr/bin/time -v "$@" >"$out" 2>"$time" || { cat "$out" "$time" >&2; echo "bench_exactly_once: '$*' failed" >&2; exit 1; }
  local mb rss
  mb="$(tail -n 1 "$out" | tr ' ' '\n' | sed -n 's/^mb_per_s=//p')"
  rss="$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$time")"
  echo "$mb $((rss / 1024))"
}

declare -a plain_send eo_send plain_recv eo_recv plain_rss eo_rss
for run in $(seq 1 "$RUNS"); do
  for mode in plain eo; do
    topic="bench-eo-$mode-$run-$$"
    flags=(--records-per-time "$PER_TIME")
    [[ $mode == eo ]] && flags+=(--exactly-once)
    [[ -z "${BROKERS:-}" ]] && flags+=(--overwrite)
    read -r send _ < <(measure "$SEND" "$topic" "$COUNT" -w "$WORKERS" "${target[@]}" "${flags[@]}")
    read -r recv rss < <(measure "$RECV" "$topic" -w "$RECV_WORKERS" "${target[@]}")
    if [[ $mode == plain ]]; then
      plain_send+=("$send") plain_recv+=("$recv") plain_rss+=("$rss")
    else
      eo_send+=("$send") eo_recv+=("$recv") eo_rss+=("$rss")
    fi
    echo "run $run $mode: send ${send} MB/s, recv ${recv} MB/s, recv RSS ${rss} MiB" >&2
    [[ -z "${BROKERS:-}" ]] && rm -rf "$WORK/log/$topic"
  done
done

python3 - "${plain_send[*]}" "${eo_send[*]}" "${plain_recv[*]}" "${eo_recv[*]}" "${plain_rss[*]}" "${eo_rss[*]}" "${BROKERS:+kafka}" <<'PY'
import statistics, sys
vals = [list(map(float, a.split())) for a in sys.argv[1:7]]
backend = sys.argv[7] or "file"
ps, es, pr, er, prss, erss = (statistics.median(v) for v in vals)
print(f"| {backend} | plain | exactly-once | ratio |")
print("|---|---|---|---|")
print(f"| capture_send MB/s | {ps:.1f} | {es:.1f} | {es / ps:.2f} |")
print(f"| capture_recv MB/s | {pr:.1f} | {er:.1f} | {er / pr:.2f} |")
print(f"| capture_recv peak RSS MiB | {prss:.0f} | {erss:.0f} | |")
print(f"bench_exactly_once: backend={backend} send_ratio={es / ps:.2f} recv_ratio={er / pr:.2f}")
PY
