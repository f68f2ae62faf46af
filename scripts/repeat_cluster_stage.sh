#!/usr/bin/env bash
# Runs .ci/run's 3-node stage N times in a row (default 5), each on a fresh
# cluster, and stops at the first failing round: the evidence that the
# stage is green every time, not once. Each round's logs are
# target/cluster-rounds/N.{cluster,broker,eo}.log; one line per round
# gives its status and wall time.
#
#   scripts/repeat_cluster_stage.sh [N]     (CI_CLUSTER_PORT, default 19492)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export PATH="$HOME/.cargo/bin:$PATH"
rounds="${1:-5}"
port="${CI_CLUSTER_PORT:-19492}"
dir=target/ci-kafka-cluster
logs=target/cluster-rounds
mkdir -p "$logs"
cluster() { KAFKA_DIR="$dir" KAFKA_PORT="$port" scripts/kafka.sh "$@"; }
trap 'cluster stop >/dev/null 2>&1 || true' EXIT

cargo build --locked --tests --bins --quiet || exit 1
for round in $(seq 1 "$rounds"); do
  start=$SECONDS
  cluster stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  if ! brokers="$(timeout 300 env KAFKA_DIR="$dir" KAFKA_PORT="$port" scripts/kafka.sh start --nodes 3)"; then
    echo "round $round: the cluster did not start" >&2
    exit 1
  fi
  status=0
  KAFKA_CLUSTER_BROKERS="$brokers" KAFKA_CLUSTER_DIR="$dir" KAFKA_CLUSTER_PORT="$port" \
    timeout 1500 cargo test --locked --test kafka_cluster -- --nocapture --test-threads 1 \
    >"$logs/$round.cluster.log" 2>&1 || status=1
  KAFKA_BROKERS="$brokers" timeout 900 cargo test --locked --test kafka_broker -- --nocapture \
    >"$logs/$round.broker.log" 2>&1 || status=1
  KAFKA_BROKERS="$brokers" timeout 900 cargo test --locked --test exactly_once_kafka -- --nocapture \
    >"$logs/$round.eo.log" 2>&1 || status=1
  cluster stop >/dev/null 2>&1
  if [[ $status -ne 0 ]]; then
    echo "round $round of $rounds: FAILED after $((SECONDS - start))s (logs: $logs/$round.*.log)"
    grep -h -E '^test .*FAILED|panicked at' "$logs/$round".*.log >&2
    exit 1
  fi
  echo "round $round of $rounds: ok in $((SECONDS - start))s"
done
echo "repeat_cluster_stage: $rounds rounds in a row passed"
