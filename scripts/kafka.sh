#!/usr/bin/env bash
# Local single-node Apache Kafka 4.x broker (KRaft: broker and controller in
# one JVM), run from the genuine Maven Central jars; no Docker needed.
#
#   scripts/kafka.sh start|stop|kill|status
#   scripts/kafka.sh client-env   the service's settings for this broker (NAME=value lines)
#   scripts/kafka.sh topics-cli <tool class> [args...]
#     e.g. topics-cli org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#          topics-cli org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server 127.0.0.1:9092 --describe --all-groups
#     (secured: add --command-config .run/kafka-secure/security/client.properties, or admin.properties)
#
# Environment (defaults):
#   KAFKA_SECURITY         plaintext, or sasl_ssl: SASL_SSL, SCRAM users and ACLs (scripts/kafka/security.sh)
#   KAFKA_VERSION          4.1.1
#   KAFKA_CACHE_DIR        $HOME/.cache/chat-backend/kafka-$KAFKA_VERSION  (jars, fetched once)
#   KAFKA_PORT             9092   client listener on 127.0.0.1
#   KAFKA_CONTROLLER_PORT  9093   KRaft controller listener on 127.0.0.1
#   KAFKA_DATA_DIR         <repo>/.run/kafka, or .run/kafka-secure when secured  (config, data/, logs/, kafka.pid)
#   KAFKA_HEAP             512m
#   PYTHON                 <repo>/.venv/bin/python  (needs confluent_kafka; used
#                          for the readiness probe, which falls back to a Java
#                          tool when that interpreter lacks confluent_kafka)
set -euo pipefail
SERVICE=kafka
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# KAFKA_SECURITY and the security_* hooks (no-ops in plaintext mode).
source "$SCRIPTS_DIR/kafka/security.sh"

KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_CACHE_DIR=$(abspath "${KAFKA_CACHE_DIR:-$HOME/.cache/chat-backend/kafka-$KAFKA_VERSION}")
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_DATA_DIR=$(abspath "${KAFKA_DATA_DIR:-$KAFKA_DEFAULT_DATA_DIR}")
KAFKA_HEAP=${KAFKA_HEAP:-512m}
PYTHON=${PYTHON:-$ROOT_DIR/.venv/bin/python}

LIB_DIR=$KAFKA_CACHE_DIR/lib
POM=$SCRIPTS_DIR/kafka/pom.xml
CONFIG=$KAFKA_DATA_DIR/server.properties
PID_FILE=$KAFKA_DATA_DIR/kafka.pid
LOG_DIR=$KAFKA_DATA_DIR/logs
OUT_LOG=$LOG_DIR/kafka.out
BOOTSTRAP=127.0.0.1:$KAFKA_PORT
START_TIMEOUT=90

# --- jars --------------------------------------------------------------------

# The cache counts as complete only with the stamp written after a full fetch;
# the stamp holds the pom's checksum so editing the pom triggers a refetch.
pom_stamp() { echo "$KAFKA_VERSION $(sha256sum <"$POM" | cut -d' ' -f1)"; }
cache_ok() { [[ -f $KAFKA_CACHE_DIR/.fetched && $(<"$KAFKA_CACHE_DIR/.fetched") == "$(pom_stamp)" ]]; }

ensure_java() {
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
}

ensure_jars() {
  ensure_java
  cache_ok && return 0
  command -v mvn >/dev/null || apt_install maven
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $KAFKA_CACHE_DIR"
  # Fetch into a temp dir next to the cache and move it into place in one
  # rename, so an interrupted fetch never leaves a half-filled cache behind.
  mkdir -p "$(dirname "$KAFKA_CACHE_DIR")"
  local tmp
  tmp=$(mktemp -d "$KAFKA_CACHE_DIR.tmp.XXXXXX") && chmod 755 "$tmp"
  # Maven runs in the background only so that, if this script is stopped,
  # the trap can stop Maven too before it writes into the removed temp dir.
  mvn -q -B -f "$POM" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp/lib" \
    >"$tmp/mvn.log" 2>&1 &
  local mvn_pid=$!
  # shellcheck disable=SC2064 # expand now: both are local to this function
  trap "kill $mvn_pid 2>/dev/null || true; rm -rf '$tmp'" EXIT
  wait "$mvn_pid" || {
    show_log_tail "$tmp/mvn.log"
    die "Maven could not fetch Kafka $KAFKA_VERSION (is that version served?)"
  }
  rm -f "$tmp/mvn.log"
  pom_stamp >"$tmp/.fetched"
  if ! cache_ok; then # unless a parallel fetch finished first
    rm -rf "$KAFKA_CACHE_DIR"
    # -T: fail rather than move into the directory if a parallel fetch won.
    mv -T "$tmp" "$KAFKA_CACHE_DIR" 2>/dev/null || cache_ok || die "could not populate $KAFKA_CACHE_DIR"
  fi
  rm -rf "$tmp"
  trap - EXIT
}

# Run a Java main class from the cached jars. The classpath glob is quoted so
# that Java, not the shell, expands it.
run_java() {
  java -Xmx256m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka/tools-log4j2.properties" \
    -cp "$LIB_DIR/*" "$@"
}

# --- broker ------------------------------------------------------------------

# Our broker is the java process started with this data dir's config; the pid
# file is only the fast path to it.
broker_pid() {
  local pid
  pid=$(read_pid "$PID_FILE")
  if pid_matches "$pid" "kafka.Kafka $CONFIG"; then echo "$pid"; else find_pid "kafka.Kafka $CONFIG"; fi
}

# One metadata round trip through the AdminClient: the broker is "ready" when
# it answers clients, not when its port is merely open.
PROBE_WITH=""
probe() {
  if [[ -z $PROBE_WITH ]]; then
    PROBE_WITH=java
    "$PYTHON" -c 'import confluent_kafka' 2>/dev/null && PROBE_WITH=python
  fi
  # Secured: the admin's client settings, from a file (security.sh).
  local properties
  if [[ $PROBE_WITH == python ]]; then
    properties=$(security_probe_rdkafka_properties)
    "$PYTHON" -c 'import sys
from confluent_kafka.admin import AdminClient
config = {"bootstrap.servers": sys.argv[1]}
for line in open(sys.argv[2]).read().splitlines() if len(sys.argv) > 2 else []:
    config.update([line.split("=", 1)] if "=" in line else [])
AdminClient(config).list_topics(timeout=2)' "$BOOTSTRAP" ${properties:+"$properties"} >/dev/null 2>&1
  else
    properties=$(security_probe_java_properties)
    # Same question through Kafka's own AdminClient (slower: one JVM per try).
    port_open "$KAFKA_PORT" &&
      timeout 20 java -Xmx128m -cp "$LIB_DIR/*" \
        -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka/tools-log4j2.properties" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list \
        ${properties:+--command-config "$properties"} >/dev/null 2>&1
  fi
}

write_config() {
  mkdir -p "$KAFKA_DATA_DIR/data" "$LOG_DIR"
  cp "$SCRIPTS_DIR/kafka/log4j2.properties" "$KAFKA_DATA_DIR/log4j2.properties"
  # Rewritten on every start so the ports follow the environment (a single
  # node restarts fine on its existing data with other ports).
  cat >"$CONFIG" <<EOF
# Written by scripts/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA_DIR/data
# Single node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Consumers in tests should get partitions at once, not after 3 s.
group.initial.rebalance.delay.ms=0
# Topics are created explicitly by the application, never by a typo.
auto.create.topics.enable=false
EOF
  security_write_config "$CONFIG"
}

# Format the storage once. The cluster id is kept in the data dir so that a
# restart reuses the same, already formatted log dirs (and keeps the data).
format_storage() {
  [[ -f $KAFKA_DATA_DIR/data/meta.properties ]] && return 0
  local id_file=$KAFKA_DATA_DIR/cluster.id
  [[ -s $id_file ]] || run_java kafka.tools.StorageTool random-uuid >"$id_file"
  log "formatting storage in $KAFKA_DATA_DIR/data (cluster id $(<"$id_file"))"
  run_java kafka.tools.StorageTool format --standalone -t "$(<"$id_file")" \
    -c "$CONFIG" --ignore-formatted "${SECURITY_FORMAT_ARGS[@]}" >&2
}

start() {
  local pid port
  pid=$(broker_pid)
  if [[ -z $pid ]]; then
    rm -f "$PID_FILE" # stale or foreign pid: start anew
    ensure_jars
    for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      port_open "$port" && die "port $port is already in use by another process"
    done
    security_prepare
    write_config
    format_storage
    log "starting broker on $BOOTSTRAP (controller :$KAFKA_CONTROLLER_PORT, data $KAFKA_DATA_DIR)"
    # setsid + nohup: own session, immune to the caller's hangup, so the
    # broker outlives this script and the terminal or CI step that ran it.
    setsid nohup java "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC \
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$KAFKA_DATA_DIR/log4j2.properties" \
      -Dkafka.logs.dir="$LOG_DIR" \
      -cp "$LIB_DIR/*" kafka.Kafka "$CONFIG" \
      </dev/null >>"$OUT_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
  else
    log "already running (pid $pid)"
    mkdir -p "$KAFKA_DATA_DIR" && echo "$pid" >"$PID_FILE" # in case it was lost
  fi
  # Also when it was already running: it may still be starting up.
  local rc=0
  wait_for "$START_TIMEOUT" "$pid" probe || rc=$?
  case $rc in
    0) log "ready on $BOOTSTRAP (pid $pid)"; security_after_start ;;
    2) show_log_tail "$OUT_LOG"; show_log_tail "$LOG_DIR/server.log"
       rm -f "$PID_FILE"; die "broker process $pid died during startup" ;;
    *) show_log_tail "$OUT_LOG"; show_log_tail "$LOG_DIR/server.log"
       die "broker not ready after ${START_TIMEOUT}s (pid $pid left running; 'kafka.sh stop' to end it)" ;;
  esac
}

stop() {
  local pid
  pid=$(broker_pid)
  if [[ -n $pid ]]; then
    log "stopping broker (pid $pid)"
    # Controlled shutdown flushes and closes the logs cleanly; SIGKILL only
    # if it hangs.
    terminate_pid "$pid" 30
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
}

kill_now() {
  local pid
  pid=$(broker_pid)
  if [[ -n $pid ]]; then
    log "killing broker (pid $pid) with SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.1; done
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
}

status() {
  local pid
  pid=$(broker_pid)
  if [[ -n $pid ]] && probe; then
    log "running and answering on $BOOTSTRAP (pid $pid)"
  else
    log "not running${pid:+ (pid $pid alive but not answering)}"
    return 1
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  kill) kill_now ;;
  status) status ;;
  client-env) security_client_env ;;
  topics-cli)
    shift
    [[ $# -ge 1 ]] || die "usage: $0 topics-cli <main class> [args...]"
    ensure_jars
    run_java "$@" ;;
  *) echo "usage: $0 {start|stop|kill|status|client-env|topics-cli <class> [args...]}" >&2; exit 2 ;;
esac
