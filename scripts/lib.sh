# shellcheck shell=bash
# Shared helpers for scripts/kafka.sh, scripts/postgres.sh, scripts/redis.sh.
# Sourced, not run. The caller sets SERVICE (used as the log prefix) first.

# Repo root = parent of this scripts/ folder, so the scripts work from any cwd
# and in a fresh clone without relying on git.
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC2034 # used by the sourcing scripts
SCRIPTS_DIR="$ROOT_DIR/scripts"

log() { printf '[%s] %s\n' "${SERVICE:-service}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Absolute form of a path (relative ones are taken from the current directory);
# the path need not exist yet. Services get absolute paths because they run
# from another directory than the caller.
abspath() { realpath -m -- "$1"; }

# Print the last lines of a log file, to show why a start failed.
show_log_tail() {
  local file=$1 lines=${2:-40}
  [[ -f $file ]] || return 0
  log "---- last $lines lines of $file ----"
  tail -n "$lines" "$file" | sed 's/\x1b\[[0-9;]*m//g' >&2 || true # minus colour codes
}

# How long an install waits for another one to finish (`make run` and `make test`
# started together on a fresh machine both install packages).
APT_LOCK_WAIT_SECONDS=600

# apt-get, its messages on stdout, waiting while another apt-get or dpkg
# holds the package manager's locks. DPkg::Lock::Timeout makes an install wait
# for the dpkg locks, but `apt-get update` gives up at once on the lists lock
# (apt 2.6), so a refusal for a lock is tried again until the same deadline.
apt_get() {
  local deadline=$((SECONDS + APT_LOCK_WAIT_SECONDS)) rc out said=""
  out=$(mktemp)
  while :; do
    rc=0
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_WAIT_SECONDS" "$@" >"$out" 2>&1 || rc=$?
    cat "$out"
    if ((rc == 0)) || ! grep -q 'Could not get lock' "$out" || ((SECONDS >= deadline)); then break; fi
    [[ -n $said ]] || log "another apt-get or dpkg is running: waiting for it to finish"
    said=1
    sleep 1
  done
  rm -f "$out"
  return "$rc"
}

# apt-get install, for a fresh Debian machine. Package post-install scripts
# would start Debian's own service (e.g. a redis on 6379, the very port we
# want): a policy-rc.d that answers 101 ("action forbidden") prevents that.
# An existing policy-rc.d (Docker images ship one) is left as it is. Packages
# already installed are left at their version (--no-upgrade).
apt_install() {
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install $*"
  local policy=/usr/sbin/policy-rc.d added=""
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added=1
  fi
  log "installing $* with apt-get"
  local rc=0 out
  out=$(mktemp)
  { apt_get update -q && apt_get install -y -q --no-install-recommends --no-upgrade "$@"; } >"$out" || rc=$?
  [[ -z $added ]] || rm -f "$policy"
  [[ $rc -eq 0 ]] || { show_log_tail "$out" 30; rm -f "$out"; die "apt-get install $* failed"; }
  rm -f "$out"
}

# --- processes -------------------------------------------------------------

# Pid stored in a pid file, or nothing.
read_pid() { if [[ -f $1 ]]; then tr -dc '0-9' <"$1"; fi; }

# Alive = exists and is not a zombie. A killed orphan stays a zombie where
# PID 1 does not reap (some containers); it must count as dead.
pid_alive() {
  local pid=${1:-} stat
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  { stat=$(<"/proc/$pid/stat"); } 2>/dev/null || return 1
  stat=${stat##*) } # drop "pid (comm) ", comm may contain spaces
  [[ ${stat:0:1} != Z ]]
}

# True if PID is alive AND its command line contains TEXT followed by a word
# boundary (so port 6379 does not match 63790): a stale pid file whose number
# was reused by an unrelated process must not count as "running".
pid_matches() {
  local pid=$1 text=$2
  pid_alive "$pid" || return 1
  { tr '\0' ' ' <"/proc/$pid/cmdline"; echo ' '; } 2>/dev/null | grep -qF -- "$text "
}

# Pid of a live process whose command line contains TEXT, or nothing. Finds a
# service whose pid file was lost (e.g. its run dir was deleted under it).
find_pid() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    [[ $pid != "$$" ]] && pid_matches "$pid" "$1" && { echo "$pid"; return 0; }
  done
  return 0
}

# SIGTERM, wait up to TIMEOUT seconds for exit, then SIGKILL.
terminate_pid() {
  local pid=$1 timeout=${2:-30} deadline
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if pid_alive "$pid"; then
    log "pid $pid still alive after ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do sleep 0.1; done
  fi
}

# True if something accepts TCP connections on 127.0.0.1:PORT (bash's
# /dev/tcp, so no extra tool is needed).
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for TIMEOUT PID COMMAND...
# Polls COMMAND until it succeeds (return 0). Returns 1 once TIMEOUT seconds
# have passed, or 2 as soon as PID (if not "-") has died: no point waiting
# for a server that already crashed.
wait_for() {
  local timeout=$1 pid=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if [[ $pid != - ]] && ! pid_alive "$pid"; then return 2; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
