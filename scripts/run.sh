#!/usr/bin/env bash
# The whole system in the foreground: Redis, Kafka, migrations, topics, the
# bridge and the daphne web server. Ctrl+C stops all of it. A service whose
# address is given in the environment (or .env) is used, not started.
#
#   DB=postgres   also start the project's own PostgreSQL (scripts/postgres.sh,
#                 127.0.0.1:55432, data in .run/postgres) and use it instead
#                 of the SQLite file; ignored when DATABASE_URL is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -f .env ]]; then set -a; source .env; set +a; fi
export DJANGO_DEBUG=${DJANGO_DEBUG:-1}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
PY=.venv/bin/python

started=()
pids=()
stop_all() {
  trap - INT TERM EXIT
  echo "Stopping..."
  ((${#pids[@]})) && kill -TERM "${pids[@]}" 2>/dev/null || true
  ((${#pids[@]})) && wait "${pids[@]}" 2>/dev/null || true
  for service in "${started[@]}"; do scripts/"$service".sh stop || true; done
}
trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

case ${DB:-sqlite} in
  sqlite | postgres) ;;
  *) echo "DB must be sqlite or postgres, not '$DB'" >&2; exit 2 ;;
esac
if [[ ${DB:-} == postgres && -z ${DATABASE_URL:-} ]]; then
  database_url=$(scripts/postgres.sh start | sed -n 's/^DATABASE_URL=//p')
  started+=(postgres)
  export DATABASE_URL=$database_url
fi
if [[ -z ${REDIS_URL:-} ]]; then scripts/redis.sh start; started+=(redis); fi
if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then scripts/kafka.sh start; started+=(kafka); fi

$PY manage.py migrate --noinput
$PY manage.py collectstatic --noinput >/dev/null
$PY manage.py kafka_topics

# Each line of a process (and of its children) begins with its role. The prefixer
# ignores Ctrl+C and SIGTERM: it ends when its process has written its last line.
prefix() {
  trap '' INT TERM
  local label
  printf -v label '%-6s | ' "$1"
  exec sed -u "s/^/$label/"
}
$PY manage.py run_kafka_bridge > >(prefix bridge) 2>&1 &
pids+=($!)
$PY manage.py serve --host "$HOST" --port "$PORT" > >(prefix web) 2>&1 &
pids+=($!)

# The database, without any password the URL holds.
database=$(sed -E 's#//[^@/]*@#//#' <<<"${DATABASE_URL:-SQLite file db.sqlite3}")
cat <<EOT

  Chat backend is up.
    REST API   http://$HOST:$PORT/api/   (schema: /api/schema/)
    WebSocket  ws://$HOST:$PORT/ws/chat/
    API docs   http://$HOST:$PORT/api/docs/ (Swagger UI)  http://$HOST:$PORT/api/redoc/
    Admin      http://$HOST:$PORT/admin/ (create a login: $PY manage.py createsuperuser)
    Database   $database
    Try it     make demo   (two users chatting, step by step)
    Health     http://$HOST:$PORT/healthz  http://$HOST:$PORT/readyz
  Ctrl+C stops everything.

EOT
# Stop everything as soon as either process ends on its own.
wait -n "${pids[@]}"
