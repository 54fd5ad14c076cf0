#!/usr/bin/env bash
# Throwaway Redis for development and tests (channel layer, cache): loopback
# only, no persistence at all, so every start after a stop is empty.
#
#   scripts/redis.sh start|stop|status
#   scripts/redis.sh url    the REDIS_URL of this instance (with its password)
#
# Environment (defaults):
#   REDIS_PORT      6379
#   REDIS_DIR       <repo>/.run/redis   (redis.pid, redis.log)
#   REDIS_PASSWORD  unset: no password. Set: clients must give it (requirepass);
#                   letters, digits and ._~- only, as it goes into REDIS_URL as it is.
#                   Never on a command line: redis-server reads it from stdin,
#                   redis-cli from REDISCLI_AUTH.
set -euo pipefail
SERVICE=redis
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_PORT=${REDIS_PORT:-6379}
REDIS_DIR=$(abspath "${REDIS_DIR:-$ROOT_DIR/.run/redis}")
REDIS_PASSWORD=${REDIS_PASSWORD:-}
PID_FILE=$REDIS_DIR/redis.pid
LOG_FILE=$REDIS_DIR/redis.log
[[ -z $REDIS_PASSWORD || $REDIS_PASSWORD =~ ^[A-Za-z0-9._~-]+$ ]] ||
  die "REDIS_PASSWORD may hold letters, digits and ._~- only (it goes into REDIS_URL as it is)"

ensure_redis() {
  # redis-tools (redis-cli) comes along as a dependency of redis-server.
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
  fi
}

# Our instance: process title "redis-server 127.0.0.1:PORT" and working
# directory REDIS_DIR (redis chdirs to --dir), so that neither a stale pid
# file nor another redis on that port (e.g. Debian's) is taken for ours.
server_pid() {
  local title="redis-server 127.0.0.1:$REDIS_PORT" pid
  pid=$(read_pid "$PID_FILE")
  pid_matches "$pid" "$title" || pid=$(find_pid "$title")
  if [[ -n $pid && $(readlink "/proc/$pid/cwd") == "$REDIS_DIR" ]]; then echo "$pid"; fi
}

# redis-cli with the password, if any, from the environment (not the command line).
cli() {
  if [[ -n $REDIS_PASSWORD ]]; then
    REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
  else
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"
  fi
}

ping() { [[ $(cli ping 2>/dev/null) == PONG ]]; }

# An instance already running must ask for a password exactly when REDIS_PASSWORD is set.
check_password_matches() {
  local answer
  answer=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1) || true
  if [[ -n $REDIS_PASSWORD && $answer == PONG ]]; then
    die "the instance on port $REDIS_PORT runs without a password: stop it first ('redis.sh stop' without REDIS_PASSWORD)"
  elif [[ -z $REDIS_PASSWORD && $answer == NOAUTH* ]]; then
    die "the instance on port $REDIS_PORT asks for a password: set REDIS_PASSWORD, or stop it with it"
  fi
}

url() { echo "redis://${REDIS_PASSWORD:+:$REDIS_PASSWORD@}127.0.0.1:$REDIS_PORT/0"; }

start() {
  ensure_redis
  local pid
  pid=$(server_pid)
  if [[ -n $pid ]]; then
    log "already running (pid $pid)"
    check_password_matches
  else
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is already in use by another process"
    mkdir -p "$REDIS_DIR"
    log "starting on 127.0.0.1:$REDIS_PORT"
    # --daemonize: redis forks and writes its own pid file. --save "" and
    # --appendonly no: tests want speed and a clean slate, not durability.
    # "-": the rest of the configuration (the password) comes from stdin. What
    # it says before its log file is open (a bad option) goes to that file too.
    printf '%s\n' ${REDIS_PASSWORD:+"requirepass $REDIS_PASSWORD"} |
      redis-server - --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$REDIS_DIR" \
        --pidfile "$PID_FILE" --logfile "$LOG_FILE" >>"$LOG_FILE" ||
      { show_log_tail "$LOG_FILE" 20; die "redis-server failed to start"; }
  fi
  # No pid to watch while it daemonizes; errors (e.g. a bad option) show up in
  # the log printed on timeout.
  wait_for 30 - ping || { show_log_tail "$LOG_FILE" 20; die "no PONG on 127.0.0.1:$REDIS_PORT after 30s"; }
  log "ready: redis://${REDIS_PASSWORD:+:***@}127.0.0.1:$REDIS_PORT/0${REDIS_PASSWORD:+ (the password is REDIS_PASSWORD)}"
}

stop() {
  local pid
  pid=$(server_pid)
  if [[ -z $pid ]]; then
    log "not running"
    return 0
  fi
  log "stopping (pid $pid)"
  # nosave: there is nothing worth keeping. Fall back to signals if the
  # server does not answer.
  cli shutdown nosave >/dev/null 2>&1 || true
  local deadline=$((SECONDS + 10))
  while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
  terminate_pid "$pid" 10
  rm -f "$PID_FILE"
}

status() {
  local pid
  pid=$(server_pid)
  if [[ -n $pid ]] && command -v redis-cli >/dev/null && ping; then
    log "running and answering on 127.0.0.1:$REDIS_PORT (pid $pid)"
  else
    log "not running"
    return 1
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  url) url ;;
  *) echo "usage: $0 {start|stop|status|url}" >&2; exit 2 ;;
esac
