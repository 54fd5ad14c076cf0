#!/usr/bin/env bash
# The whole system in the foreground: Redis, Kafka, migrations, topics, the
# bridge and the daphne web server; "Chat backend is up" once the web server
# answers /readyz. Ctrl+C stops all of it. A service whose address is given in
# the environment (or .env) is used, not started.
#
# The first run writes .env (git-ignored) with a secret key of its own and
# DJANGO_DEBUG=1: the settings read it, so every manage.py command in another
# terminal runs as the server does. The environment wins over .env.
#
#   DB=postgres   also start the project's own PostgreSQL (scripts/postgres.sh,
#                 127.0.0.1:55432, data in .run/postgres) and use it instead
#                 of the SQLite file; ignored when DATABASE_URL is set.
#   KAFKA_BROKERS=3
#                 a cluster of three Kafka nodes (scripts/kafka.sh: 127.0.0.1
#                 9092, 9192, 9292, data in .run/kafka-cluster) instead of one;
#                 ignored when KAFKA_BOOTSTRAP_SERVERS is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=.venv/bin/python
# The file the settings read (relative to this checkout, as for them).
env_file=${DJANGO_ENV_FILE:-.env}
if [[ ! -e $env_file ]]; then
  secret_key=$($PY -c 'import secrets; print(secrets.token_urlsafe(50))')
  (
    umask 077 # it holds a secret
    cat >"$env_file" <<EOT
# This checkout's settings for local development, written by \`make run\` on its
# first run (git-ignored). The settings read this file, and a variable set in
# the environment wins over it; .env.example lists every setting.
DJANGO_SECRET_KEY=$secret_key
DJANGO_DEBUG=1
EOT
  )
  echo "Wrote $env_file: a secret key of its own and DJANGO_DEBUG=1 (for every manage.py command too)."
fi
# What .env sets and the environment does not, read as the settings read it.
dotenv_exports=$($PY -m chat_project.dotenv "$env_file")
eval "$dotenv_exports"
export DJANGO_DEBUG=${DJANGO_DEBUG:-1}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}

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
admin_hint="$PY manage.py createsuperuser"
if [[ ${DB:-} == postgres && -z ${DATABASE_URL:-} ]]; then
  database_url=$(scripts/postgres.sh start | sed -n 's/^DATABASE_URL=//p')
  started+=(postgres)
  export DATABASE_URL=$database_url
  admin_hint="DATABASE_URL=$database_url $admin_hint" # not in .env: another terminal needs it too
fi
if [[ -z ${REDIS_URL:-} ]]; then scripts/redis.sh start; started+=(redis); fi
if [[ -z ${KAFKA_BOOTSTRAP_SERVERS:-} ]]; then
  scripts/kafka.sh start # one node, or KAFKA_BROKERS of them
  started+=(kafka)
  KAFKA_BOOTSTRAP_SERVERS=$(scripts/kafka.sh bootstrap)
  export KAFKA_BOOTSTRAP_SERVERS
fi

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
web_pid=$!
pids+=($web_pid)

# The banner waits for the web server's /readyz (the database, Redis and Kafka
# answer it), so that `make demo` typed at once finds a server. Asked over
# bash's /dev/tcp (no curl needed), on loopback when it listens everywhere, with
# a Host header the server accepts.
case $HOST in
  0.0.0.0) probe_host=127.0.0.1 ;;
  :: | '[::]') probe_host=::1 ;;
  *) probe_host=$HOST ;;
esac
host_header=${DJANGO_ALLOWED_HOSTS:-127.0.0.1}
host_header=${host_header%%,*}
host_header=${host_header#.} # ".example.com" allows example.com too
[[ -n $host_header && $host_header != '*' ]] || host_header=$probe_host
# The status /readyz answers (503 while something it checks does not), or nothing while nothing listens.
readyz_status() {
  (
    exec 3<>"/dev/tcp/$probe_host/$PORT" || exit 0
    printf 'GET /readyz HTTP/1.0\r\nHost: %s\r\n\r\n' "$host_header" >&3
    read -r -t 10 _ status _ <&3 && printf '%s' "$status"
  ) 2>/dev/null || true
}
waiting_since=$SECONDS next_note=$((SECONDS + 30))
until [[ $(readyz_status) == 200 ]]; do
  if ! kill -0 "$web_pid" 2>/dev/null; then
    echo "The web server exited before it was ready: see its lines above." >&2
    exit 1
  fi
  if ((SECONDS >= next_note)); then
    echo "Still waiting for http://$probe_host:$PORT/readyz to answer 200 ($((SECONDS - waiting_since)) s): see the lines above."
    next_note=$((SECONDS + 30))
  fi
  sleep 0.5
done

# The database, without any password the URL holds.
database=$(sed -E 's#//[^@/]*@#//#' <<<"${DATABASE_URL:-SQLite file db.sqlite3}")
cat <<EOT

  Chat backend is up.
    REST API   http://$HOST:$PORT/api/   (schema: /api/schema/)
    WebSocket  ws://$HOST:$PORT/ws/chat/
    API docs   http://$HOST:$PORT/api/docs/ (Swagger UI)  http://$HOST:$PORT/api/redoc/
    Admin      http://$HOST:$PORT/admin/ (create a login: $admin_hint)
    Database   $database
    Kafka      $KAFKA_BOOTSTRAP_SERVERS
    Try it     make demo   (two users chatting, step by step)
    Health     http://$HOST:$PORT/healthz  http://$HOST:$PORT/readyz
  Ctrl+C stops everything.

EOT
# Stop everything as soon as either process ends on its own.
wait -n "${pids[@]}"
