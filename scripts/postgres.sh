#!/usr/bin/env bash
# Private PostgreSQL cluster for development and tests: its own data dir,
# port and socket dir, so it never touches Debian's system cluster (5432).
#
#   scripts/postgres.sh start|stop|status
#
# Environment (defaults):
#   PG_PORT      55432            listens on 127.0.0.1 only
#   PG_DATA_DIR  <repo>/.run/postgres   (data/ = PGDATA, run/ = socket, postgres.log)
#   PG_DB        chat             created on start if missing, owner postgres
#
# Access is trust auth for user postgres, no password:
#   DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB
set -euo pipefail
SERVICE=postgres
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT=${PG_PORT:-55432}
PG_DATA_DIR=$(abspath "${PG_DATA_DIR:-$ROOT_DIR/.run/postgres}")
PG_DB=${PG_DB:-chat}

PGDATA=$PG_DATA_DIR/data
SOCKET_DIR=$PG_DATA_DIR/run # keep short: unix socket paths max ~107 bytes
LOG_FILE=$PG_DATA_DIR/postgres.log
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB

[[ $PG_DB =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "PG_DB must be a plain identifier, got '$PG_DB'"

# PostgreSQL refuses to run as root: every server-side command runs as the
# postgres user (created by Debian's package).
as_pg() { runuser -u postgres -- "$@"; }

# Server binaries: those of the version that created an existing cluster
# (a newer major version cannot open it), else the highest installed one.
find_pg_bin() {
  if [[ -f $PGDATA/PG_VERSION ]]; then
    local version bin
    version=$(<"$PGDATA/PG_VERSION")
    bin=/usr/lib/postgresql/$version/bin
    [[ -x $bin/pg_ctl ]] || die "cluster in $PGDATA needs PostgreSQL $version, which is not installed"
    echo "$bin"
    return
  fi
  local dir
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    [[ -x $dir/initdb && -x $dir/pg_ctl ]] && { echo "$dir"; return; }
  done
  return 0 # none found: empty output
}

PG_BIN=$(find_pg_bin)
ensure_postgres() {
  [[ -n $PG_BIN ]] && return 0
  # Debian's postinst would also create and start the "main" cluster on
  # 5432; apt_install keeps it from starting, the cluster itself is harmless.
  apt_install postgresql
  PG_BIN=$(find_pg_bin)
  [[ -n $PG_BIN ]] || die "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after installing"
}

# The postgres user must be able to reach PGDATA: give "search" (x) to every
# parent directory that lacks it for others (e.g. a repo under /root).
open_parent_dirs() {
  local dir=$PG_DATA_DIR
  while dir=$(dirname "$dir"); [[ $dir != / ]]; do
    if ! runuser -u postgres -- test -x "$dir"; then
      log "chmod o+x $dir so that the postgres user can reach $PG_DATA_DIR"
      chmod o+x "$dir"
    fi
  done
}

init_cluster() {
  mkdir -p "$PG_DATA_DIR"
  chown postgres:postgres "$PG_DATA_DIR"
  open_parent_dirs
  as_pg mkdir -p "$SOCKET_DIR"
  [[ -f $PGDATA/PG_VERSION ]] && return 0
  log "initdb in $PGDATA"
  # C.UTF-8 exists on every Debian without generating locales.
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_DATA_DIR/initdb.log" 2>&1 ||
    { show_log_tail "$PG_DATA_DIR/initdb.log"; die "initdb failed"; }
  # Trust only over the local socket and loopback; nothing else may connect.
  as_pg tee "$PGDATA/pg_hba.conf" >/dev/null <<EOF
# Written by scripts/postgres.sh: private test cluster, loopback only.
local   all          all                 trust
host    all          all   127.0.0.1/32  trust
local   replication  all                 trust
host    replication  all   127.0.0.1/32  trust
EOF
  echo "include_if_exists = 'local.conf'" | as_pg tee -a "$PGDATA/postgresql.conf" >/dev/null
}

# Settings that may follow the environment (the port) are rewritten on every
# start into an included file, leaving initdb's postgresql.conf alone.
write_config() {
  as_pg tee "$PGDATA/local.conf" >/dev/null <<EOF
# Written by scripts/postgres.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCKET_DIR'
max_connections = 200
# Durability stays on: tests kill things and data must survive a crash.
fsync = on
synchronous_commit = on
full_page_writes = on
# Cheap speed-ups that do not weaken durability: tests run many short
# queries, for which JIT compilation is pure overhead.
jit = off
max_wal_size = 1GB
# Statement counts per query (make bench reads them for its database-work
# figures; CREATE EXTENSION pg_stat_statements in a database to see them).
# Loading the module costs next to nothing while nobody reads it.
shared_preload_libraries = 'pg_stat_statements'
EOF
}

# The postmaster's pid, from the lock file it keeps in PGDATA.
postmaster_pid() { if [[ -f $PGDATA/postmaster.pid ]]; then head -n1 "$PGDATA/postmaster.pid" | tr -dc '0-9'; fi; }

# pg_ctl status alone is fooled by a killed postmaster that is still a zombie
# (PID 1 in containers reaps late or never), hence the pid_alive check.
running() {
  [[ -f $PGDATA/PG_VERSION ]] && pid_alive "$(postmaster_pid)" &&
    as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1
}
ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -d postgres -U postgres; }
psql_pg() { "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

ensure_database() {
  if [[ -z $(psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]]; then
    log "creating database $PG_DB"
    # A parallel start may have created it meanwhile: recheck on failure.
    psql_pg -d postgres -c "CREATE DATABASE \"$PG_DB\" OWNER postgres" 2>/dev/null ||
      [[ -n $(psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'") ]] ||
      die "could not create database $PG_DB"
  fi
}

start() {
  ensure_postgres
  if running; then
    log "already running (data $PGDATA)"
  else
    port_open "$PG_PORT" && die "port $PG_PORT is already in use by another process"
    init_cluster
    write_config
    # After a crash the lock files name a dead (or zombie) postmaster; the
    # server refuses to start while that pid still "exists".
    pid_alive "$(postmaster_pid)" || rm -f "$PGDATA/postmaster.pid" "$SOCKET_DIR"/.s.PGSQL.*.lock
    log "starting PostgreSQL $(basename "$(dirname "$PG_BIN")") on 127.0.0.1:$PG_PORT"
    # -w: pg_ctl itself waits until the server accepts connections (or
    # fails); pg_isready below then confirms over TCP.
    as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA" -l "$LOG_FILE" -w -t 60 >/dev/null ||
      { show_log_tail "$LOG_FILE" 20; die "pg_ctl start failed"; }
  fi
  wait_for 60 - ready || { show_log_tail "$LOG_FILE" 20; die "not accepting connections on 127.0.0.1:$PG_PORT"; }
  ensure_database
  log "ready"
  echo "DATABASE_URL=$DATABASE_URL"
}

stop() {
  if [[ -n $PG_BIN ]] && running; then
    log "stopping (fast: disconnect clients, clean shutdown)"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA" -m fast -w -t 60 >/dev/null
  else
    log "not running"
  fi
}

status() {
  if [[ -n $PG_BIN ]] && running && ready; then
    log "running and accepting connections on 127.0.0.1:$PG_PORT"
    echo "DATABASE_URL=$DATABASE_URL"
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
