#!/usr/bin/env bash
# Local Apache Kafka 4.x in KRaft mode, run from the genuine Maven Central
# jars; no Docker needed. Each node is broker and controller in one JVM. One
# node by default; KAFKA_BROKERS=3 starts a cluster of three such nodes that
# elect their active controller among themselves (a dynamic quorum, all three
# voters from the start), every partition on 3 of them, a write needing 2.
#
#   scripts/kafka.sh start|stop|kill|status [N]
#       every node, or node N only (1..KAFKA_BROKERS): `kill 2` is SIGKILL for
#       node 2 alone, `start 2` brings it back; `stop` is a controlled shutdown
#   scripts/kafka.sh bootstrap
#       prints the client addresses of every node (for KAFKA_BOOTSTRAP_SERVERS)
#   scripts/kafka.sh topics-cli <tool class> [args...]
#     e.g. topics-cli org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#          topics-cli org.apache.kafka.tools.consumer.group.ConsumerGroupCommand --bootstrap-server 127.0.0.1:9092 --describe --all-groups
#
# Node N listens for clients on 127.0.0.1:KAFKA_PORT+100*(N-1) and for the
# other controllers on 127.0.0.1:KAFKA_CONTROLLER_PORT+100*(N-1): by default
# 9092, 9192, 9292 and 9093, 9193, 9293.
#
# Each layout keeps its own data directory (.run/kafka for one node,
# .run/kafka-cluster for a cluster), so one checkout switches between them and
# keeps the topics of each; a data directory formatted for another layout is
# refused with a message saying what to do.
#
# Environment (defaults):
#   KAFKA_BROKERS          1      nodes (1 to 9); 3 for a cluster
#   KAFKA_VERSION          4.1.1
#   KAFKA_CACHE_DIR        $HOME/.cache/chat-backend/kafka-$KAFKA_VERSION  (jars, fetched once)
#   KAFKA_PORT             9092   client listener of node 1 on 127.0.0.1
#   KAFKA_CONTROLLER_PORT  9093   KRaft controller listener of node 1 on 127.0.0.1
#   KAFKA_DATA_DIR         <repo>/.run/kafka, or <repo>/.run/kafka-cluster with more than one node.
#                          One node keeps server.properties, data/, logs/ and kafka.pid in it;
#                          a cluster keeps them in node1/, node2/... under it.
#   KAFKA_HEAP             512m for one node, 384m for each node of a cluster
#   PYTHON                 <repo>/.venv/bin/python  (needs confluent_kafka; used
#                          for the readiness probe, which falls back to a Java
#                          tool when that interpreter lacks confluent_kafka)
set -euo pipefail
SERVICE=kafka
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_BROKERS=${KAFKA_BROKERS:-1}
[[ $KAFKA_BROKERS =~ ^[1-9]$ ]] || die "KAFKA_BROKERS must be a number of nodes from 1 to 9, not '$KAFKA_BROKERS'"
if ((KAFKA_BROKERS == 1)); then
  default_data_dir=$ROOT_DIR/.run/kafka default_heap=512m
else
  default_data_dir=$ROOT_DIR/.run/kafka-cluster default_heap=384m
fi
KAFKA_VERSION=${KAFKA_VERSION:-4.1.1}
KAFKA_CACHE_DIR=$(abspath "${KAFKA_CACHE_DIR:-$HOME/.cache/chat-backend/kafka-$KAFKA_VERSION}")
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
KAFKA_DATA_DIR=$(abspath "${KAFKA_DATA_DIR:-$default_data_dir}")
KAFKA_HEAP=${KAFKA_HEAP:-$default_heap}
PYTHON=${PYTHON:-$ROOT_DIR/.venv/bin/python}

LIB_DIR=$KAFKA_CACHE_DIR/lib
POM=$SCRIPTS_DIR/kafka/pom.xml
START_TIMEOUT=90
# Every partition, the internal topics' too, has a replica on each node up to
# three; a write is acknowledged once 2 of them hold it (1 on a single node).
# The application's topics follow the same rule (manage.py kafka_topics).
REPLICATION=$((KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3))
MIN_INSYNC=$((REPLICATION < 2 ? 1 : 2))
# What a data directory was formatted for (its `layout` file): another layout
# cannot start on it.
LAYOUT="nodes=$KAFKA_BROKERS"
LAYOUT_FILE=$KAFKA_DATA_DIR/layout
CLUSTER_ID_FILE=$KAFKA_DATA_DIR/cluster.id
# The first quorum's voters, id@host:port:directory-id each, as formatted.
CONTROLLERS_FILE=$KAFKA_DATA_DIR/controllers

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

# --- nodes -------------------------------------------------------------------

NODES=$(seq 1 "$KAFKA_BROKERS")
client_port() { echo $((KAFKA_PORT + 100 * ($1 - 1))); }
controller_port() { echo $((KAFKA_CONTROLLER_PORT + 100 * ($1 - 1))); }
# One node lives in the data dir itself (as it always has), a cluster's nodes in node1/, node2/...
node_dir() { if ((KAFKA_BROKERS == 1)); then echo "$KAFKA_DATA_DIR"; else echo "$KAFKA_DATA_DIR/node$1"; fi; }
node_config() { echo "$(node_dir "$1")/server.properties"; }
node_name() { if ((KAFKA_BROKERS == 1)); then echo broker; else echo "node $1"; fi; }
joined() { local IFS=,; echo "$*"; }
addresses() {
  local n list=()
  for n in $NODES; do list+=("127.0.0.1:$("$1" "$n")"); done
  joined "${list[@]}"
}

# The nodes a command acts on: node N when given, else all of them.
TARGETS=$NODES
select_node() {
  [[ -z ${1:-} ]] && return 0
  [[ $1 =~ ^[1-9]$ ]] && (($1 <= KAFKA_BROKERS)) || die "no node '$1': nodes are 1 to $KAFKA_BROKERS (KAFKA_BROKERS)"
  TARGETS=$1
}

# A node is the java process started with its config; the pid file is only
# the fast path to it.
node_pid() {
  local config pid
  config=$(node_config "$1")
  pid=$(read_pid "$(node_dir "$1")/kafka.pid")
  if pid_matches "$pid" "kafka.Kafka $config"; then echo "$pid"; else find_pid "kafka.Kafka $config"; fi
}

# How many of the nodes are running.
live_nodes() {
  local n count=0
  for n in $NODES; do [[ -z $(node_pid "$n") ]] || count=$((count + 1)); done
  echo "$count"
}

# The config of a Kafka node of this machine that listens on PORT, if any, to
# say which one holds a port we need.
kafka_on_port() {
  local f args config
  for f in /proc/[0-9]*/cmdline; do
    args=$(tr '\0' '\n' <"$f" 2>/dev/null) || continue
    [[ $args == *$'\nkafka.Kafka\n'* ]] || continue
    config=${args##*$'\n'}
    if grep -qE "^listeners=.*:$1(,|\$)" "$config" 2>/dev/null; then echo "$config"; return 0; fi
  done
  return 0
}

check_port_free() {
  local other
  port_open "$1" || return 0
  other=$(kafka_on_port "$1")
  [[ -n $other ]] && die "port $1 is in use by the Kafka node of $other: stop it first" \
    "(scripts/kafka.sh stop, with the KAFKA_BROKERS, KAFKA_PORT and KAFKA_DATA_DIR it was started with)"
  die "port $1 is already in use by another process"
}

# One metadata round trip through the AdminClient to node N: it is "ready"
# when it answers clients and the cluster counts it among its live brokers,
# not when its port is merely open.
PROBE_WITH=""
probe() {
  local port
  port=$(client_port "$1")
  if [[ -z $PROBE_WITH ]]; then
    PROBE_WITH=java
    "$PYTHON" -c 'import confluent_kafka' 2>/dev/null && PROBE_WITH=python
  fi
  if [[ $PROBE_WITH == python ]]; then
    "$PYTHON" -c 'import sys
from confluent_kafka.admin import AdminClient
metadata = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=2)
sys.exit(0 if int(sys.argv[2]) in metadata.brokers else 1)' "127.0.0.1:$port" "$1" >/dev/null 2>&1
  else
    # Whether it answers, through Kafka's own AdminClient (slower: one JVM per try).
    port_open "$port" &&
      timeout 20 java -Xmx128m -cp "$LIB_DIR/*" \
        -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka/tools-log4j2.properties" \
        org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" --list >/dev/null 2>&1
  fi
}

# --- config and storage --------------------------------------------------------

# The config of one node: its id, its two ports and its directory are all that
# differ between nodes; the quorum and replication lines are the cluster's.
# Rewritten on every start so the client ports follow the environment (a node
# restarts fine on its existing data with another client port).
write_node_config() {
  local id=$1 port=$2 controller=$3 dir=$4 quorum
  quorum=$(addresses controller_port)
  mkdir -p "$dir/data" "$dir/logs"
  cp "$SCRIPTS_DIR/kafka/log4j2.properties" "$dir/log4j2.properties"
  cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=$id
controller.quorum.bootstrap.servers=$quorum
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
# Internal topics on as many nodes as the application's (at most 3), a write
# to them needing MIN_INSYNC; the same defaults for any other topic.
offsets.topic.replication.factor=$REPLICATION
transaction.state.log.replication.factor=$REPLICATION
transaction.state.log.min.isr=$MIN_INSYNC
share.coordinator.state.topic.replication.factor=$REPLICATION
share.coordinator.state.topic.min.isr=$MIN_INSYNC
default.replication.factor=$REPLICATION
min.insync.replicas=$MIN_INSYNC
# Consumers in tests should get partitions at once, not after 3 s.
group.initial.rebalance.delay.ms=0
# Topics are created explicitly by the application, never by a typo.
auto.create.topics.enable=false
EOF
  if ((KAFKA_BROKERS > 1)); then
    cat >>"$dir/server.properties" <<EOF
# A node that stops heartbeating is fenced after 3 s (default 9 s), and its
# partitions' leadership moves: a killed node costs a chat seconds, not ten.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=3000
# A live follower that stops fetching leaves the ISR after 5 s (default 30 s),
# so writes that wait for every in-sync replica do not wait for it long.
replica.lag.time.max.ms=5000
# A follower whose leader moved tries the new one after 100 ms, not 1 s: until
# it does, no write to the partition is acknowledged (acks=all).
replica.fetch.backoff.ms=100
EOF
  fi
}

# A Kafka Uuid as `StorageTool random-uuid` prints one: 16 random bytes in
# unpadded URL-safe base64, never beginning with '-' (it would read as an option).
kafka_uuid() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $id == -* ]] || { echo "$id"; return 0; }
  done
}

formatted() { [[ -f $(node_dir "$1")/data/meta.properties ]]; }

# The data dir must hold this layout, or nothing yet. One node formatted before
# the layout file existed counts as nodes=1.
check_layout() {
  local found=""
  if [[ -f $LAYOUT_FILE ]]; then
    found=$(<"$LAYOUT_FILE")
  elif [[ -f $KAFKA_DATA_DIR/data/meta.properties ]]; then
    found=nodes=1
  fi
  [[ -z $found || $found == "$LAYOUT" ]] && return 0
  die "$KAFKA_DATA_DIR holds a Kafka formatted for $found, not $LAYOUT (KAFKA_BROKERS=$KAFKA_BROKERS)." \
    "Each layout keeps its own data directory: leave KAFKA_DATA_DIR unset (.run/kafka for one node," \
    ".run/kafka-cluster for more), point it at another directory, or remove this one to start afresh (its topics are lost)."
}

# A cluster's voters are formatted with their controller addresses: they can
# only come back on the same ones.
check_controller_ports() {
  local n formatted wanted=()
  [[ -s $CONTROLLERS_FILE ]] || return 0
  formatted=$(sed -E 's/:[A-Za-z0-9_-]+(,|$)/\1/g' "$CONTROLLERS_FILE") # minus the directory ids
  for n in $NODES; do wanted+=("$n@127.0.0.1:$(controller_port "$n")"); done
  [[ $formatted == "$(joined "${wanted[@]}")" ]] ||
    die "the cluster in $KAFKA_DATA_DIR was formatted with the controllers $formatted;" \
      "start it with the KAFKA_CONTROLLER_PORT it had, or remove the directory to start afresh (its topics are lost)"
}

# Format the storage of every node once, all with the same cluster id (kept in
# the data dir, so restarts reuse the formatted log dirs and keep the data).
# One node is a quorum of its own (--standalone); a cluster's nodes are all
# formatted with the same voters (--initial-controllers), each recognising its
# own entry by node id and taking that entry's directory id.
format_storage() {
  local n pids=() missing=() failed=0 quorum
  for n in $NODES; do formatted "$n" || missing+=("$n"); done
  ((${#missing[@]})) || return 0
  if ((${#missing[@]} < KAFKA_BROKERS)); then
    die "node(s) ${missing[*]} of the cluster in $KAFKA_DATA_DIR have no data while the others do;" \
      "remove the directory to start afresh (its topics are lost)"
  fi
  [[ -s $CLUSTER_ID_FILE ]] || kafka_uuid >"$CLUSTER_ID_FILE"
  if ((KAFKA_BROKERS == 1)); then
    quorum=(--standalone)
  else
    if [[ ! -s $CONTROLLERS_FILE ]]; then
      local voters=()
      for n in $NODES; do voters+=("$n@127.0.0.1:$(controller_port "$n"):$(kafka_uuid)"); done
      joined "${voters[@]}" >"$CONTROLLERS_FILE"
    fi
    quorum=(--initial-controllers "$(<"$CONTROLLERS_FILE")")
  fi
  echo "$LAYOUT" >"$LAYOUT_FILE"
  log "formatting storage in $KAFKA_DATA_DIR for $LAYOUT (cluster id $(<"$CLUSTER_ID_FILE"))"
  for n in "${missing[@]}"; do
    run_java kafka.tools.StorageTool format "${quorum[@]}" -t "$(<"$CLUSTER_ID_FILE")" \
      -c "$(node_config "$n")" --ignore-formatted >"$(node_dir "$n")/logs/format.out" 2>&1 &
    pids+=($!)
  done
  for n in "${!pids[@]}"; do
    wait "${pids[$n]}" || { failed=1; show_log_tail "$(node_dir "${missing[$n]}")/logs/format.out"; }
  done
  ((failed == 0)) || die "formatting the storage in $KAFKA_DATA_DIR failed"
}

# --- commands ------------------------------------------------------------------

launch_node() {
  local n=$1 dir pid
  dir=$(node_dir "$n")
  log "starting $(node_name "$n") on 127.0.0.1:$(client_port "$n") (controller :$(controller_port "$n"), data $dir)"
  # setsid + nohup: own session, immune to the caller's hangup, so the node
  # outlives this script and the terminal or CI step that ran it.
  setsid nohup java "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -Dkafka.logs.dir="$dir/logs" \
    -cp "$LIB_DIR/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$dir/logs/kafka.out" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/kafka.pid"
}

wait_ready() {
  local n=$1 pid dir rc=0
  pid=$(node_pid "$n")
  dir=$(node_dir "$n")
  wait_for "$START_TIMEOUT" "${pid:--}" probe "$n" || rc=$?
  case $rc in
    0) log "$(node_name "$n") ready on 127.0.0.1:$(client_port "$n") (pid $pid)" ;;
    2) show_log_tail "$dir/logs/kafka.out"; show_log_tail "$dir/logs/server.log"
       rm -f "$dir/kafka.pid"; die "$(node_name "$n") (pid $pid) died during startup" ;;
    *) show_log_tail "$dir/logs/kafka.out"; show_log_tail "$dir/logs/server.log"
       die "$(node_name "$n") not ready after ${START_TIMEOUT}s (pid $pid left running; 'kafka.sh stop' to end it)" ;;
  esac
}

start() {
  local n pid starting=()
  check_layout
  check_controller_ports
  for n in $TARGETS; do
    pid=$(node_pid "$n")
    if [[ -n $pid ]]; then
      log "$(node_name "$n") already running (pid $pid)"
      echo "$pid" >"$(node_dir "$n")/kafka.pid" # in case it was lost
    else
      starting+=("$n")
    fi
  done
  if ((${#starting[@]})); then
    ensure_jars
    for n in "${starting[@]}"; do
      check_port_free "$(client_port "$n")"
      check_port_free "$(controller_port "$n")"
    done
    # Every node not running gets its config: formatting a new cluster needs all of them.
    for n in $NODES; do
      [[ -n $(node_pid "$n") ]] || write_node_config "$n" "$(client_port "$n")" "$(controller_port "$n")" "$(node_dir "$n")"
    done
    format_storage
    for n in "${starting[@]}"; do
      rm -f "$(node_dir "$n")/kafka.pid" # stale or foreign pid: start anew
      launch_node "$n"
    done
  fi
  # Also those already running: they may still be starting up. The nodes of a
  # new cluster start together, so waiting for each in turn costs no more.
  for n in $TARGETS; do wait_ready "$n"; done
  ((KAFKA_BROKERS == 1)) || [[ $TARGETS != "$NODES" ]] || log "cluster ready: $(addresses client_port)"
}

# How long a node left without a quorum may go on trying to shut down in a
# controlled way: it waits for an active controller that can no longer be elected.
NO_QUORUM_GRACE=5

stop() {
  local n pid stopping=() deadline lost_at="" running why
  # All at once: each node's controlled shutdown moves its leaderships to the
  # others while they still run.
  for n in $TARGETS; do
    pid=$(node_pid "$n")
    if [[ -n $pid ]]; then
      log "stopping $(node_name "$n") (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$pid")
    else
      log "$(node_name "$n") not running"
    fi
  done
  # Controlled shutdown flushes and closes the logs cleanly; SIGKILL only if it
  # hangs, or once too few nodes are left to elect the controller it waits for.
  deadline=$((SECONDS + 30))
  while running=$(for pid in "${stopping[@]}"; do if pid_alive "$pid"; then echo "$pid"; fi; done) && [[ -n $running ]]; do
    if ((KAFKA_BROKERS > 1)) && ((2 * $(live_nodes) <= KAFKA_BROKERS)); then
      lost_at=${lost_at:-$SECONDS}
    fi
    why="still alive after 30s"
    [[ -z $lost_at ]] || why="no quorum left for a controlled shutdown"
    if ((SECONDS >= deadline)) || { [[ -n $lost_at ]] && ((SECONDS - lost_at >= NO_QUORUM_GRACE)); }; then
      log "sending SIGKILL to pid(s) ${running//$'\n'/ }: $why"
      for pid in $running; do kill -KILL "$pid" 2>/dev/null || true; done
      for pid in $running; do while pid_alive "$pid"; do sleep 0.1; done; done
      break
    fi
    sleep 0.2
  done
  for n in $TARGETS; do rm -f "$(node_dir "$n")/kafka.pid"; done
}

kill_now() {
  local n pid
  for n in $TARGETS; do
    pid=$(node_pid "$n")
    if [[ -n $pid ]]; then
      log "killing $(node_name "$n") (pid $pid) with SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while pid_alive "$pid"; do sleep 0.1; done
    else
      log "$(node_name "$n") not running"
    fi
    rm -f "$(node_dir "$n")/kafka.pid"
  done
}

status() {
  local n pid rc=0
  for n in $TARGETS; do
    pid=$(node_pid "$n")
    if [[ -n $pid ]] && probe "$n"; then
      log "$(node_name "$n") running and answering on 127.0.0.1:$(client_port "$n") (pid $pid)"
    else
      log "$(node_name "$n") not running${pid:+ (pid $pid alive but not answering)}"
      rc=1
    fi
  done
  return "$rc"
}

case ${1:-} in
  start | stop | kill | status)
    [[ $# -le 2 ]] || die "usage: $0 $1 [node]"
    select_node "${2:-}"
    case $1 in
      start) start ;;
      stop) stop ;;
      kill) kill_now ;;
      status) status ;;
    esac ;;
  bootstrap) addresses client_port ;;
  topics-cli)
    shift
    [[ $# -ge 1 ]] || die "usage: $0 topics-cli <main class> [args...]"
    ensure_jars
    run_java "$@" ;;
  *) echo "usage: $0 {start|stop|kill|status [node]|bootstrap|topics-cli <class> [args...]}" >&2; exit 2 ;;
esac
