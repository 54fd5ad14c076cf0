#!/usr/bin/env bash
# Throwaway Redis for development and tests (channel layer, cache): loopback
# only, no persistence at all, so every start after a stop is empty.
#
#   scripts/redis.sh start|stop|status
#
# Environment (defaults):
#   REDIS_PORT  6379
#   REDIS_DIR   <repo>/.run/redis   (redis.pid, redis.log)
set -euo pipefail
SERVICE=redis
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REDIS_PORT=${REDIS_PORT:-6379}
REDIS_DIR=$(abspath "${REDIS_DIR:-$ROOT_DIR/.run/redis}")
PID_FILE=$REDIS_DIR/redis.pid
LOG_FILE=$REDIS_DIR/redis.log

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

ping() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

start() {
  ensure_redis
  local pid
  pid=$(server_pid)
  if [[ -n $pid ]]; then
    log "already running (pid $pid)"
  else
    port_open "$REDIS_PORT" && die "port $REDIS_PORT is already in use by another process"
    mkdir -p "$REDIS_DIR"
    log "starting on 127.0.0.1:$REDIS_PORT"
    # --daemonize: redis forks and writes its own pid file. --save "" and
    # --appendonly no: tests want speed and a clean slate, not durability.
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
      --save "" --appendonly no --dir "$REDIS_DIR" \
      --pidfile "$PID_FILE" --logfile "$LOG_FILE" ||
      { show_log_tail "$LOG_FILE" 20; die "redis-server failed to start"; }
  fi
  # No pid to watch while it daemonizes; errors (e.g. a bad option) show up in
  # the log printed on timeout.
  wait_for 30 - ping || { show_log_tail "$LOG_FILE" 20; die "no PONG on 127.0.0.1:$REDIS_PORT after 30s"; }
  log "ready: redis://127.0.0.1:$REDIS_PORT/0"
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
  redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
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
  *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
