# Sourced by test.sh and bench.sh: start PostgreSQL, Redis and a fresh Kafka
# on ports of their own (so `make run` can stay up), export their addresses,
# and stop them all when the calling script exits.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_DIR=${TEST_RUN_DIR:-$ROOT/.run/test}

export PG_PORT=${TEST_PG_PORT:-55433} PG_DATA_DIR=$RUN_DIR/postgres PG_DB=chat
export REDIS_PORT=${TEST_REDIS_PORT:-16379} REDIS_DIR=$RUN_DIR/redis
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092} KAFKA_CONTROLLER_PORT=${TEST_KAFKA_CONTROLLER_PORT:-19093}
# One broker, or with KAFKA_BROKERS=3 the whole suite on a cluster of three.
export KAFKA_BROKERS=${KAFKA_BROKERS:-1}
if ((KAFKA_BROKERS == 1)); then export KAFKA_DATA_DIR=$RUN_DIR/kafka; else export KAFKA_DATA_DIR=$RUN_DIR/kafka-cluster; fi
# The cluster tests' own three nodes (tests/faults/test_cluster.py starts and
# stops them), on ports of their own derived the same way.
export TEST_KAFKA_CLUSTER_PORT=${TEST_KAFKA_CLUSTER_PORT:-$((KAFKA_PORT + 1000))}
export TEST_KAFKA_CLUSTER_CONTROLLER_PORT=${TEST_KAFKA_CLUSTER_CONTROLLER_PORT:-$((KAFKA_CONTROLLER_PORT + 1000))}
export TEST_KAFKA_CLUSTER_DIR=$RUN_DIR/kafka-cluster-tests

stop_services() {
  "$ROOT"/scripts/kafka.sh stop || true
  # Left running only when a test run was killed before its fixture stopped it.
  KAFKA_BROKERS=3 KAFKA_PORT=$TEST_KAFKA_CLUSTER_PORT KAFKA_CONTROLLER_PORT=$TEST_KAFKA_CLUSTER_CONTROLLER_PORT \
    KAFKA_DATA_DIR=$TEST_KAFKA_CLUSTER_DIR "$ROOT"/scripts/kafka.sh stop >/dev/null 2>&1 || true
  "$ROOT"/scripts/redis.sh stop || true
  "$ROOT"/scripts/postgres.sh stop || true
}
trap stop_services EXIT

# Every run starts with empty topics, consumer groups and logs.
"$ROOT"/scripts/kafka.sh stop
rm -rf "$KAFKA_DATA_DIR" "$RUN_DIR/logs"
"$ROOT"/scripts/postgres.sh start
"$ROOT"/scripts/redis.sh start
"$ROOT"/scripts/kafka.sh start

export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
KAFKA_BOOTSTRAP_SERVERS=$("$ROOT"/scripts/kafka.sh bootstrap)
export KAFKA_BOOTSTRAP_SERVERS
export DJANGO_SECRET_KEY=tests DJANGO_DEBUG=0
# Nothing of a developer's .env (make run writes one) changes what the tests see.
export DJANGO_ENV_FILE=/dev/null
# The test or benchmark process itself never relays the outbox; the servers it starts do.
export OUTBOX_RELAY_AUTOSTART=0
export TEST_LOG_DIR=$RUN_DIR/logs

"$ROOT"/.venv/bin/python "$ROOT"/manage.py kafka_topics
