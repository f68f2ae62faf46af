#!/usr/bin/env bash
# Start or stop an independent Kafka-API broker (tansu, memory storage) on
# 127.0.0.1 for the large Kafka runs and the benchmark.
#
#   scripts/broker.sh start    install tansu if missing, start it, wait until it answers
#   scripts/broker.sh stop     stop it
#   scripts/broker.sh status   exit 0 if it is running
#
# Environment: BROKER_PORT (default 9092), BROKER_DIR (pid and log; default target/broker).
# The first install builds tansu from crates.io: about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT="${BROKER_PORT:-9092}"
DIR="${BROKER_DIR:-target/broker}"
PIDFILE="$DIR/tansu.pid"
LOG="$DIR/tansu.log"
TANSU_VERSION=0.6.0

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

install() {
  if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    return
  fi
  if [[ -x "$HOME/.cargo/bin/tansu" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
    return
  fi
  echo "broker.sh: installing tansu $TANSU_VERSION (first time only, ~15 minutes)" >&2
  cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore
}

start() {
  export PATH="$HOME/.cargo/bin:$PATH"
  if running; then
    echo "broker.sh: tansu already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
    return
  fi
  if answers; then
    echo "broker.sh: something already listens on 127.0.0.1:$PORT" >&2
    exit 1
  fi
  install
  mkdir -p "$DIR"
  nohup tansu broker \
    --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine "memory://tansu/" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 300); do
    if answers; then
      echo "broker.sh: tansu running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"
      return
    fi
    if ! running; then
      echo "broker.sh: tansu exited; its log:" >&2
      tail -n 20 "$LOG" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "broker.sh: tansu did not answer on 127.0.0.1:$PORT within 30s" >&2
  stop
  exit 1
}

stop() {
  if running; then
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    for _ in $(seq 1 50); do running || break; sleep 0.1; done
    running && kill -9 "$(cat "$PIDFILE")" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
