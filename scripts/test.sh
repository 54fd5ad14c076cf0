#!/usr/bin/env bash
# The whole test suite, against real PostgreSQL, Redis and Kafka that this
# script starts on test ports of their own (so `make run` can stay up), and
# stops again at the end. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
RUN_DIR=$ROOT/.run/test

export PG_PORT=${TEST_PG_PORT:-55433} PG_DATA_DIR=$RUN_DIR/postgres PG_DB=chat
export REDIS_PORT=${TEST_REDIS_PORT:-16379} REDIS_DIR=$RUN_DIR/redis
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092} KAFKA_CONTROLLER_PORT=${TEST_KAFKA_CONTROLLER_PORT:-19093}
export KAFKA_DATA_DIR=$RUN_DIR/kafka

stop_services() {
  scripts/kafka.sh stop || true
  scripts/redis.sh stop || true
  scripts/postgres.sh stop || true
}
trap stop_services EXIT

# Every run starts with empty topics, groups and logs.
scripts/kafka.sh stop
rm -rf "$KAFKA_DATA_DIR" "$RUN_DIR/logs"
scripts/postgres.sh start
scripts/redis.sh start
scripts/kafka.sh start

export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB
export REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export DJANGO_SECRET_KEY=tests DJANGO_DEBUG=0
# The pytest process itself never relays the outbox; the servers it starts do.
export OUTBOX_RELAY_AUTOSTART=0
export TEST_LOG_DIR=$RUN_DIR/logs

.venv/bin/ruff check .
.venv/bin/python manage.py makemigrations --check --dry-run >/dev/null
.venv/bin/python manage.py kafka_topics
.venv/bin/pytest "$@"
