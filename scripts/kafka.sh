#!/usr/bin/env bash
# Start or stop Apache Kafka (KRaft, combined broker+controller nodes) on
# 127.0.0.1: the reference broker for CI, the large Kafka runs and the benches.
#
#   scripts/kafka.sh start [--nodes N]   install Kafka if missing, format fresh
#                                        storage, start N nodes (default 1), wait
#                                        until every broker is registered and
#                                        unfenced, print the bootstrap list
#   scripts/kafka.sh start --secure      the same with one node that also has
#                                        TLS listeners (below)
#   scripts/kafka.sh start --node I      restart node I of the running cluster
#                                        (its data kept: it rejoins)
#   scripts/kafka.sh stop [--node I] [--kill]
#                                        stop every node (or node I); --kill
#                                        sends SIGKILL at once (a crash, for tests)
#   scripts/kafka.sh status [--node I]   print each node's state; exit 0 if all
#                                        (or node I) run
#   scripts/kafka.sh bootstrap           print the bootstrap list
#   scripts/kafka.sh secure-bootstrap    print the SASL_SSL bootstrap (--secure)
#   scripts/kafka.sh mtls-bootstrap      print the mutual-TLS bootstrap (--secure)
#   scripts/kafka.sh pid I               print node I's pid
#   scripts/kafka.sh controller-leader   print the node id of the KRaft leader
#   scripts/kafka.sh install             only install the jars
#   scripts/kafka.sh run CLASS ARGS...   run a Kafka Java class (console tools)
#                                        with the installed jars
#
# Environment:
#   KAFKA_PORT     first node's client port (default 9092); node I listens on
#                  KAFKA_PORT+2(I-1) (PLAINTEXT) and the port after it (CONTROLLER)
#                  (a --secure node: the ports after that too, see below)
#   KAFKA_DIR      data, logs and pid files (default target/kafka); run a second
#                  instance with another KAFKA_DIR and KAFKA_PORT
#   KAFKA_VERSION  Apache Kafka version (default pinned below)
#   KAFKA_CACHE    where the jars are installed (default
#                  ${XDG_CACHE_HOME:-~/.cache}/timely-kafka)
#   KAFKA_HEAP     JVM heap options per node (default -Xms256m -Xmx1g)
#   KAFKA_START_TIMEOUT  seconds to wait for the brokers (default 120)
#   KAFKA_PROPS    extra server.properties lines (newline separated)
#
# A --secure node (one only: it takes node 2's ports) listens on
#   KAFKA_PORT    PLAINTEXT (inter-broker traffic, tools, readiness checks)
#   KAFKA_PORT+1  CONTROLLER
#   KAFKA_PORT+2  SASL_SSL: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN, user alice,
#                 password alice-secret
#   KAFKA_PORT+3  SSL with a client certificate required (mutual TLS)
# all advertised as 127.0.0.1. Its certificates are made afresh at each start
# under KAFKA_DIR/tls: ca.pem (and ca.key); broker.pem for IP 127.0.0.1 and
# DNS localhost; client.pem and client.key (CN alice) for mutual TLS;
# other-ca.pem, an unrelated CA, and other-client.pem/.key signed by it, for
# wrong-CA tests. Keys are unencrypted PKCS#8 P-256. Client settings go to
#   KAFKA_DIR/client-sasl-ssl.properties, client-mtls.properties
#                  librdkafka key=value lines (the crate's -X flags)
#   KAFKA_DIR/java-sasl-ssl.properties, java-mtls.properties
#                  for the Java tools (--producer.config, --consumer.config,
#                  --command-config)
#
# The jars come from Maven Central (org.apache.kafka:kafka_2.13 and
# kafka-tools, plus the log4j binding the published POMs leave out) through a
# generated pom and a pinned maven-dependency-plugin; Java 17+ and Maven are
# needed. Only the pids written by this script are ever signalled.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="${KAFKA_VERSION:-4.1.1}"
# The SLF4J 1.x binding matching the log4j Kafka 4.1 already depends on.
LOG4J_VERSION=2.24.3
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1
BASE_PORT="${KAFKA_PORT:-9092}"
DIR="$(mkdir -p "${KAFKA_DIR:-target/kafka}" && cd "${KAFKA_DIR:-target/kafka}" && pwd)"
CACHE="${KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/timely-kafka}/kafka-$VERSION"
LIB="$CACHE/lib"
HEAP="${KAFKA_HEAP:--Xms256m -Xmx1g}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-120}"
STATE="$DIR/cluster.env"
SECURE_USER=alice
SECURE_PASSWORD=alice-secret

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

client_port() { echo $((BASE_PORT + 2 * ($1 - 1))); }
controller_port() { echo $((BASE_PORT + 2 * ($1 - 1) + 1)); }
sasl_ssl_port() { echo $((BASE_PORT + 2)); }
mtls_port() { echo $((BASE_PORT + 3)); }
node_dir() { echo "$DIR/node$1"; }
pidfile() { echo "$(node_dir "$1")/pid"; }

# The node count of the cluster in $DIR (recorded at start), else 0.
nodes_started() {
  if [[ -f "$STATE" ]]; then
    sed -n 's/^NODES=//p' "$STATE"
  else
    echo 0
  fi
}

# Whether the cluster in $DIR was started with --secure.
secure_started() { grep -qx 'SECURE=1' "$STATE" 2>/dev/null; }

bootstrap_list() {
  local n=$1 i list=""
  for ((i = 1; i <= n; i++)); do
    list+="${list:+,}127.0.0.1:$(client_port "$i")"
  done
  echo "$list"
}

# The client ports of the given node ids, comma separated.
ports_of() {
  local i list=""
  for i in "$@"; do list+="${list:+,}127.0.0.1:$(client_port "$i")"; done
  echo "$list"
}

started_marks() {
  local count
  count="$(grep -c "Kafka Server started" "$(node_dir "$1")/logs/server.log" 2>/dev/null)" || true
  echo "${count:-0}"
}

# Running means: the recorded pid is alive AND is the java process started
# with this node's properties (a reused pid is never signalled).
running() {
  local file pid
  file="$(pidfile "$1")"
  [[ -f "$file" ]] || return 1
  pid="$(cat "$file")"
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$(node_dir "$1")/server.properties"
}

need_java() {
  command -v java >/dev/null 2>&1 ||
    die "java not found: Apache Kafka $VERSION needs Java 17+ (apt-get install openjdk-17-jre-headless)"
  local major
  major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ "${major%%.*}" -ge 17 ]] 2>/dev/null ||
    die "java is version ${major:-unknown}: Apache Kafka $VERSION needs Java 17+"
}

install() {
  need_java
  [[ -f "$CACHE/.complete" ]] && return
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found: installing Apache Kafka $VERSION from Maven Central needs Maven (apt-get install maven)"
  echo "kafka.sh: installing Apache Kafka $VERSION from Maven Central into $CACHE (first time only)" >&2
  local work="$CACHE.tmp.$$"
  rm -rf "$work"
  mkdir -p "$work"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.timely-kafka</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$VERSION</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  if ! (cd "$work" && mvn -B -q -f pom.xml "$DEPENDENCY_PLUGIN:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory=lib >mvn.log 2>&1); then
    local why
    why="$(grep -m1 -E 'ERROR' "$work/mvn.log" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200)"
    die "could not install Apache Kafka $VERSION from Maven Central (mvn failed: ${why:-see $work/mvn.log})"
  fi
  [[ -f "$work/lib/kafka_2.13-$VERSION.jar" ]] || die "mvn left no kafka_2.13-$VERSION.jar in $work/lib"
  rm -rf "$CACHE"
  mv "$work" "$CACHE"
  touch "$CACHE/.complete"
}

# Broker log config: one size-bounded file per node under its logs dir.
write_log_config() {
  cat >"$DIR/log4j2.properties" <<'EOF'
status = warn
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 2
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF
  cat >"$DIR/log4j2-tools.properties" <<'EOF'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
EOF
}

# The TLS listeners' settings of a --secure node. SCRAM credentials live in
# the metadata log (added at format time); PLAIN checks the JAAS user_ entry.
# Both listeners share one PEM key store (the key needs no password) and
# trust store; only SSL asks the client for a certificate.
secure_properties() {
  local scram=org.apache.kafka.common.security.scram.ScramLoginModule
  cat <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=$scram required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=$scram required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SECURE_USER="$SECURE_PASSWORD";
ssl.keystore.type=PEM
ssl.keystore.location=$DIR/tls/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=$DIR/tls/ca.pem
listener.name.ssl.ssl.client.auth=required
EOF
}

write_properties() {
  local i=$1 n=$2 voters=$3 secure=$4 rf=1 isr=1 tls="" extra=""
  if ((n >= 3)); then rf=3 isr=2; fi
  if ((secure)); then
    tls=",SASL_SSL://127.0.0.1:$(sasl_ssl_port),SSL://127.0.0.1:$(mtls_port)"
    extra="$(secure_properties)"
  fi
  mkdir -p "$(node_dir "$i")/data" "$(node_dir "$i")/logs"
  cat >"$(node_dir "$i")/server.properties" <<EOF
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(client_port "$i"),CONTROLLER://127.0.0.1:$(controller_port "$i")$tls
advertised.listeners=PLAINTEXT://127.0.0.1:$(client_port "$i")$tls
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${tls:+,SASL_SSL:SASL_SSL,SSL:SSL}
log.dirs=$(node_dir "$i")/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
# Keep records whatever their timestamps: tests write fixed past timestamps
# (event-time buckets), which the default 7-day time retention deletes at
# its first check, 30 s after start. Explicit deletes still apply.
log.retention.ms=-1
$extra
${KAFKA_PROPS:-}
EOF
}

# issue_cert NAME CA CN USAGE [EXTENSION...]: NAME.key and NAME.pem, signed by
# CA.key. Python 3.13+ verifies strictly: key identifiers and critical
# constraints are set on every certificate.
issue_cert() {
  local name=$1 ca=$2 cn=$3 usage=$4
  shift 4
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -keyout "$name.key" -subj "/CN=$cn" |
    openssl x509 -req -CA "$ca.pem" -CAkey "$ca.key" -CAcreateserial -days 7 -out "$name.pem" \
      -extfile <(printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature \
        "extendedKeyUsage=$usage" subjectKeyIdentifier=hash authorityKeyIdentifier=keyid "$@")
}

new_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -days 7 -keyout "$1.key" -out "$1.pem" \
    -subj "/CN=$2" -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# The --secure node's certificates (see the header) and the clients'
# settings. Kafka's PEM stores take the key and the chain in one file.
write_tls() {
  local t="$DIR/tls"
  command -v openssl >/dev/null 2>&1 || die "openssl not found: start --secure makes its certificates with it"
  mkdir -p "$t"
  {
    new_ca "$t/ca" "timely-kafka test CA" && new_ca "$t/other-ca" "unrelated test CA" &&
      issue_cert "$t/broker" "$t/ca" localhost serverAuth subjectAltName=IP:127.0.0.1,DNS:localhost &&
      issue_cert "$t/client" "$t/ca" "$SECURE_USER" clientAuth &&
      issue_cert "$t/other-client" "$t/other-ca" "$SECURE_USER" clientAuth
  } >"$t/openssl.log" 2>&1 || die "openssl failed making the certificates: $(tail -n 1 "$t/openssl.log")"
  cat "$t/broker.key" "$t/broker.pem" "$t/ca.pem" >"$t/broker-keystore.pem"
  cat "$t/client.key" "$t/client.pem" >"$t/client-keystore.pem"
  printf '%s\n' security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512 "sasl.username=$SECURE_USER" \
    "sasl.password=$SECURE_PASSWORD" "ssl.ca.location=$t/ca.pem" >"$DIR/client-sasl-ssl.properties"
  printf '%s\n' security.protocol=SSL "ssl.ca.location=$t/ca.pem" "ssl.certificate.location=$t/client.pem" \
    "ssl.key.location=$t/client.key" >"$DIR/client-mtls.properties"
  printf '%s\n' security.protocol=SASL_SSL sasl.mechanism=SCRAM-SHA-512 \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$SECURE_USER\" password=\"$SECURE_PASSWORD\";" \
    ssl.truststore.type=PEM "ssl.truststore.location=$t/ca.pem" >"$DIR/java-sasl-ssl.properties"
  printf '%s\n' security.protocol=SSL ssl.truststore.type=PEM "ssl.truststore.location=$t/ca.pem" \
    ssl.keystore.type=PEM "ssl.keystore.location=$t/client-keystore.pem" >"$DIR/java-mtls.properties"
}

# Each node runs in a session of its own: a CI stage or test that kills its
# own process group on exit leaves a broker it restarted running, and the
# pid file is written by the process that becomes the JVM.
launch() {
  local i=$1 nd
  nd="$(node_dir "$i")"
  rm -f "$nd/pid"
  # shellcheck disable=SC2086,SC2016 # HEAP holds several JVM options; $$ is the inner shell's
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' launch "$nd/pid" \
    java $HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$DIR/log4j2.properties" -Dkafka.logs.dir="$nd/logs" \
    -cp "$LIB/*" kafka.Kafka "$nd/server.properties" </dev/null >>"$nd/logs/stdout.log" 2>&1 &
  local _
  for _ in $(seq 1 50); do [[ -s "$nd/pid" ]] && return; sleep 0.1; done
  die "node $i did not start (no pid after 5s)"
}

run_tool() {
  java -Xmx512m -Dlog4j2.configurationFile="$DIR/log4j2-tools.properties" -cp "$LIB/*" "$@"
}

# Node ids that the cluster reports as registered, unfenced brokers.
unfenced_brokers() {
  timeout 20 java -Xmx256m -Dlog4j2.configurationFile="$DIR/log4j2-tools.properties" -cp "$LIB/*" \
    org.apache.kafka.tools.ClusterTool list-endpoints --bootstrap-server "$1" 2>/dev/null |
    awk '$5 == "unfenced" && $6 == "broker" { print $1 }' || true
}

# Wait until each node in "$@" has logged its start (one more time than the
# count in MARKS_BEFORE) and is an unfenced broker in the metadata it serves
# itself (asking only the nodes waited for: a node killed a moment ago is
# still listed as unfenced by the others), bounded by START_TIMEOUT.
wait_ready() {
  local want=("$@") deadline=$((SECONDS + START_TIMEOUT)) bootstrap id missing
  bootstrap="$(ports_of "$@")"
  while ((SECONDS < deadline)); do
    for id in "${want[@]}"; do
      if ! running "$id"; then
        echo "kafka.sh: node $id exited while starting; the end of $(node_dir "$id")/logs:" >&2
        tail -n 15 "$(node_dir "$id")/logs/server.log" "$(node_dir "$id")/logs/stdout.log" >&2 2>/dev/null || true
        return 1
      fi
    done
    missing=""
    for id in "${want[@]}"; do
      (($(started_marks "$id") > ${MARKS_BEFORE[$id]:-0})) || missing+=" $id"
    done
    if [[ -z "$missing" ]]; then
      local ready
      ready="$(unfenced_brokers "$bootstrap")"
      for id in "${want[@]}"; do
        grep -qx "$id" <<<"$ready" || missing+=" $id"
      done
    fi
    [[ -z "$missing" ]] && return 0
    sleep 1
  done
  echo "kafka.sh: node(s)$missing not serving metadata on $bootstrap within ${START_TIMEOUT}s (logs under $DIR)" >&2
  return 1
}

start_all() {
  local n=$1 secure=$2 i voters="" cluster_id scram=()
  local existing
  existing="$(nodes_started)"
  for ((i = 1; i <= existing; i++)); do
    if running "$i"; then
      die "a cluster is already running in $DIR (node $i, pid $(cat "$(pidfile "$i")")); stop it first"
    fi
  done
  local port ports=()
  for ((i = 1; i <= n; i++)); do ports+=("$(client_port "$i")" "$(controller_port "$i")"); done
  ((secure)) && ports+=("$(sasl_ssl_port)" "$(mtls_port)")
  for port in "${ports[@]}"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port on 127.0.0.1 is in use (set KAFKA_PORT to another base port)"
    fi
  done
  install
  rm -rf "$DIR"/node* "$DIR/tls" "$DIR"/client-*.properties "$DIR"/java-*.properties
  write_log_config
  if ((secure)); then
    write_tls
    for i in SCRAM-SHA-512 SCRAM-SHA-256; do
      scram+=(--add-scram "$i=[name=$SECURE_USER,password=$SECURE_PASSWORD]")
    done
  fi
  for ((i = 1; i <= n; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i")"
  done
  cluster_id="$(run_tool kafka.tools.StorageTool random-uuid)" || die "java could not run kafka.tools.StorageTool from $LIB"
  for ((i = 1; i <= n; i++)); do
    write_properties "$i" "$n" "$voters" "$secure"
    run_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$(node_dir "$i")/server.properties" \
      "${scram[@]}" >"$(node_dir "$i")/logs/format.log" 2>&1 ||
      die "formatting node $i failed: $(tail -n 1 "$(node_dir "$i")/logs/format.log")"
  done
  printf 'NODES=%s\nBASE_PORT=%s\nCLUSTER_ID=%s\nSECURE=%s\n' "$n" "$BASE_PORT" "$cluster_id" "$secure" >"$STATE"
  # A KRaft quorum elects its leader only once a majority runs: start all.
  for ((i = 1; i <= n; i++)); do launch "$i"; done
  local ids=()
  for ((i = 1; i <= n; i++)); do ids+=("$i"); done
  if ! wait_ready "${ids[@]}"; then
    stop_nodes "$n" TERM
    exit 1
  fi
  if ((secure)); then
    echo "kafka.sh: SASL_SSL 127.0.0.1:$(sasl_ssl_port) ($DIR/client-sasl-ssl.properties)," \
      "mutual TLS 127.0.0.1:$(mtls_port) ($DIR/client-mtls.properties)" >&2
  fi
  echo "kafka.sh: Apache Kafka $VERSION, $n node(s), bootstrap:" >&2
  bootstrap_list "$n"
}

start_one() {
  local i=$1 n
  n="$(nodes_started)"
  ((i >= 1 && i <= n)) || die "no node $i in $DIR (the cluster there has $n node(s); start it first)"
  if running "$i"; then
    echo "kafka.sh: node $i already running (pid $(cat "$(pidfile "$i")"))" >&2
    return
  fi
  need_java
  MARKS_BEFORE[$i]="$(started_marks "$i")"
  launch "$i"
  wait_ready "$i" || exit 1
  echo "kafka.sh: node $i running (pid $(cat "$(pidfile "$i")")) on 127.0.0.1:$(client_port "$i")" >&2
}

# Signal the given nodes, then wait for them (TERM: bounded, then KILL).
stop_nodes() {
  local signal=$1
  shift
  local i pids=() deadline
  for i in "$@"; do
    if running "$i"; then
      pids+=("$(cat "$(pidfile "$i")")")
      kill "-$signal" "$(cat "$(pidfile "$i")")" 2>/dev/null || true
    fi
  done
  deadline=$((SECONDS + 30))
  for i in "$@"; do
    while running "$i" && ((SECONDS < deadline)); do sleep 0.2; done
    if running "$i"; then
      echo "kafka.sh: node $i did not stop within 30s; killing it" >&2
      kill -KILL "$(cat "$(pidfile "$i")")" 2>/dev/null || true
      while running "$i"; do sleep 0.1; done
    fi
    rm -f "$(pidfile "$i")"
  done
}

stop_cmd() {
  local node=$1 signal=$2 n i ids=()
  n="$(nodes_started)"
  if [[ -n "$node" ]]; then
    ((node >= 1 && node <= n)) || die "no node $node in $DIR (the cluster there has $n node(s))"
    stop_nodes "$signal" "$node"
    return
  fi
  for ((i = 1; i <= n; i++)); do ids+=("$i"); done
  # Brokers shut down in parallel; the last ones wait for a controller
  # majority that is leaving too, so the bound in stop_nodes matters.
  ((${#ids[@]} > 0)) && stop_nodes "$signal" "${ids[@]}"
  return 0
}

status_cmd() {
  local node=$1 n i ok=0
  n="$(nodes_started)"
  if ((n == 0)); then
    echo "kafka.sh: no cluster in $DIR" >&2
    return 1
  fi
  for ((i = 1; i <= n; i++)); do
    [[ -n "$node" && "$node" != "$i" ]] && continue
    if running "$i"; then
      echo "node $i: running (pid $(cat "$(pidfile "$i")")) 127.0.0.1:$(client_port "$i")"
    else
      echo "node $i: stopped 127.0.0.1:$(client_port "$i")"
      ok=1
    fi
  done
  echo "bootstrap: $(bootstrap_list "$n")"
  if secure_started; then echo "secure: SASL_SSL 127.0.0.1:$(sasl_ssl_port), mutual TLS 127.0.0.1:$(mtls_port)"; fi
  return $ok
}

controller_leader() {
  local n
  n="$(nodes_started)"
  ((n > 0)) || die "no cluster in $DIR"
  local i live=()
  for ((i = 1; i <= n; i++)); do running "$i" && live+=("$i"); done
  ((${#live[@]} > 0)) || die "no node of the cluster in $DIR is running"
  run_tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$(ports_of "${live[@]}")" \
    describe --status | awk -F'[: \t]+' '$1 == "LeaderId" { print $2 }'
}

declare -A MARKS_BEFORE=()
cmd="${1:-}"
[[ $# -gt 0 ]] && shift
nodes=1 node="" signal=TERM secure=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) nodes="${2:?--nodes needs a count}"; shift 2 ;;
    --node) node="${2:?--node needs a node id}"; shift 2 ;;
    --kill) signal=KILL; shift ;;
    --secure) secure=1; shift ;;
    *) [[ "$cmd" == run || "$cmd" == pid ]] && break; die "unknown option '$1'" ;;
  esac
done

[[ "$nodes" =~ ^[1-9]$ ]] || die "--nodes must be a count from 1 to 9, got '$nodes'"
[[ -z "$node" || "$node" =~ ^[1-9]$ ]] || die "--node must be a node id from 1 to 9, got '$node'"
((secure == 0 || (nodes == 1 && ${#node} == 0))) || die "--secure starts one fresh node (no --nodes above 1, no --node)"

case "$cmd" in
  start)
    if [[ -n "$node" ]]; then start_one "$node"; else start_all "$nodes" "$secure"; fi ;;
  stop) stop_cmd "$node" "$signal" ;;
  status) status_cmd "$node" ;;
  bootstrap)
    n="$(nodes_started)"
    ((n > 0)) || die "no cluster in $DIR"
    bootstrap_list "$n" ;;
  secure-bootstrap | mtls-bootstrap)
    secure_started || die "no --secure node in $DIR (start one with: scripts/kafka.sh start --secure)"
    if [[ "$cmd" == secure-bootstrap ]]; then echo "127.0.0.1:$(sasl_ssl_port)"; else echo "127.0.0.1:$(mtls_port)"; fi ;;
  pid)
    i="${1:?pid needs a node id}"
    running "$i" || die "node $i is not running"
    cat "$(pidfile "$i")" ;;
  controller-leader) controller_leader ;;
  install) install; echo "$LIB" ;;
  run)
    [[ $# -gt 0 ]] || die "run needs a Java class name"
    install
    write_log_config
    run_tool "$@" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2 ;;
esac
