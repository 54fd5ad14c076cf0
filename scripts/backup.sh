#!/usr/bin/env bash
# Backups of the PostgreSQL database, and their restore into an empty database.
#
#   scripts/backup.sh create          (make backup)
#   scripts/backup.sh restore FILE    (make restore FILE=...)
#
# create: one consistent snapshot, dumped by pg_dump in its custom format
#   (-Fc) to BACKUP_DIR (default backups/, git-ignored) as
#   <database>-<UTC time>.dump, with a manifest beside it (same name,
#   .json): the time, the database, the server's and pg_dump's versions, the
#   dump's size and sha256, the row count of every table, the conversations'
#   last seqs (count, sum, max and a digest of every conversation's last seq)
#   and the last applied migration of each app. The counts are read in the
#   snapshot the dump is taken from, so they describe exactly what it holds.
# restore: checks FILE against its manifest (size and sha256) first, refuses
#   a database that has any table, restores in one transaction (owners and
#   grants become the connecting user's), checks the restored counts against
#   the manifest, and ANALYZEs.
#
# Both read DATABASE_URL as the app does: from the environment, else from the
# checkout's .env (DJANGO_ENV_FILE), parsed by dj_database_url; the password
# goes to the tools in the environment, never on a command line. The tools
# are Debian's postgresql-client of the server's major version, installed
# when missing (as root). On SQLite (no DATABASE_URL: the local default)
# nothing is done and the message says what to do instead.
set -euo pipefail
SERVICE=backup
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT_DIR"

PY=$ROOT_DIR/.venv/bin/python
[[ -x $PY ]] || die "no virtualenv: run make venv (or make backup) first"

# What .env sets and the environment does not (DATABASE_URL, BACKUP_DIR), read as the settings read it.
dotenv_exports=$("$PY" -m chat_project.dotenv "${DJANGO_ENV_FILE:-.env}")
eval "$dotenv_exports"

### The database ###

# Sets DB_ENGINE (postgresql, sqlite or other), SQLITE_PATH, and for
# PostgreSQL the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD,
# PGDATABASE and the SSL ones of the URL's query), from DATABASE_URL.
read_database_url() {
  local settings
  settings=$("$PY" - "$ROOT_DIR" <<'EOF'
import os
import shlex
import sys

import dj_database_url

# The same default as chat_project/settings.py.
url = os.environ.get("DATABASE_URL") or f"sqlite:///{sys.argv[1]}/db.sqlite3"
try:
    config = dj_database_url.parse(url)
except Exception as exc:
    print(f"DB_ENGINE=other DB_PROBLEM={shlex.quote(str(exc))}")
    sys.exit(0)
engine = config["ENGINE"]
if engine.endswith("sqlite3"):
    print(f"DB_ENGINE=sqlite SQLITE_PATH={shlex.quote(str(config['NAME']))}")
elif engine.endswith(("postgresql", "postgis")):
    print("DB_ENGINE=postgresql")
    values = {
        "PGHOST": config.get("HOST"),
        "PGPORT": config.get("PORT"),
        "PGUSER": config.get("USER"),
        "PGPASSWORD": config.get("PASSWORD"),
        "PGDATABASE": config.get("NAME"),
    }
    libpq = {
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
        "sslcert": "PGSSLCERT",
        "sslkey": "PGSSLKEY",
        "connect_timeout": "PGCONNECT_TIMEOUT",
        "options": "PGOPTIONS",
    }
    for option, value in (config.get("OPTIONS") or {}).items():
        if option in libpq:
            values[libpq[option]] = value
    for name, value in values.items():
        if value not in (None, ""):
            print(f"export {name}={shlex.quote(str(value))}")
else:
    print(f"DB_ENGINE=other DB_PROBLEM={shlex.quote(engine)}")
EOF
  )
  DB_ENGINE='' SQLITE_PATH='' DB_PROBLEM=''
  eval "$settings"
  case $DB_ENGINE in
    postgresql) ;;
    sqlite) refuse_sqlite "$1" ;;
    *) die "DATABASE_URL names a database this script does not handle ($DB_PROBLEM); it backs up PostgreSQL" ;;
  esac
  PGDATABASE=${PGDATABASE:-postgres}
  # The server as messages name it (never the password).
  DB_WHERE="database $PGDATABASE on ${PGHOST:-the local socket}:${PGPORT:-5432}"
}

refuse_sqlite() {
  local action=$1 file=$SQLITE_PATH
  if [[ $action == create ]]; then
    die "the database is the SQLite file $file (DATABASE_URL is unset), which this script does not back up.
  Stop make run and copy the file (cp $file backups/), or, while it runs,
  sqlite3 $file \".backup backups/db.sqlite3\" (Debian's sqlite3 package).
  Production runs on PostgreSQL: set DATABASE_URL and run make backup again."
  fi
  die "the database is the SQLite file $file (DATABASE_URL is unset), which this script does not restore into.
  Stop make run and copy a backup of the file over it (with no $file-wal or $file-shm beside it).
  Backups of PostgreSQL are restored into PostgreSQL: set DATABASE_URL and run make restore again."
}

### Client tools of the server's version ###

# The highest installed client's directory, or nothing.
any_client_bin() {
  local dir
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
    [[ -x $dir/psql ]] && { echo "$dir"; return; }
  done
  return 0
}

install_client() {
  local package=$1
  [[ $(id -u) -eq 0 ]] || die "$package is not installed: install it (apt-get install $package) and run this again"
  apt-cache show "$package" >/dev/null 2>&1 ||
    die "$package is not in this machine's apt sources: add the PostgreSQL apt repository (apt.postgresql.org) or install it by hand"
  apt_install "$package"
}

# Sets CLIENT_BIN to the client tools of the server's major version, SERVER_MAJOR and SERVER_VERSION.
find_client_for_server() {
  local bin out
  bin=$(any_client_bin)
  if [[ -z $bin ]]; then
    install_client postgresql-client
    bin=$(any_client_bin)
  fi
  out=$("$bin/psql" -X -q -At -v ON_ERROR_STOP=1 \
    -c "SELECT current_setting('server_version_num')::int / 10000, current_setting('server_version')" 2>&1) || {
    [[ $out != *"database \"$PGDATABASE\" does not exist"* ]] ||
      out+=$'\n'"  Create it empty first (CREATE DATABASE $PGDATABASE OWNER <the app's user>), then run this again."
    die "cannot connect to the $DB_WHERE: $out"
  }
  SERVER_MAJOR=${out%%|*}
  SERVER_VERSION=${out#*|}
  # pg_dump must not be older than the server, and a newer one may write what an older pg_restore cannot read.
  CLIENT_BIN=/usr/lib/postgresql/$SERVER_MAJOR/bin
  if [[ ! -x $CLIENT_BIN/pg_dump ]]; then
    install_client "postgresql-client-$SERVER_MAJOR"
    [[ -x $CLIENT_BIN/pg_dump ]] || die "no $CLIENT_BIN/pg_dump after installing postgresql-client-$SERVER_MAJOR"
  fi
}

psql_db() { "$CLIENT_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# One line of JSON: what the manifest says of the database's contents, read
# in the current transaction's snapshot. Every table of the schema is counted exactly.
read -r -d '' FACTS_SQL <<'SQL' || true
SELECT json_build_object(
  'database', current_database(),
  'server_version', current_setting('server_version'),
  'tables', (
    SELECT json_object_agg(table_name, rows ORDER BY table_name) FROM (
      SELECT table_name,
        (xpath('/row/n/text()', query_to_xml(
          format('SELECT count(*) AS n FROM %I.%I', table_schema, table_name), false, true, '')))[1]::text::bigint AS rows
      FROM information_schema.tables
      WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
    ) counted
  ),
  'conversations', (
    SELECT json_build_object(
      'count', count(*),
      'last_seq_sum', coalesce(sum(last_seq), 0),
      'last_seq_max', coalesce(max(last_seq), 0),
      'last_seq_md5', md5(coalesce(string_agg(id::text || ':' || last_seq, ',' ORDER BY id), ''))
    ) FROM messaging_conversation
  ),
  'migrations', (
    SELECT json_object_agg(app, name ORDER BY app) FROM (
      SELECT app, max(name) AS name FROM django_migrations GROUP BY app
    ) heads
  )
);
SQL

require_chat_schema() {
  local present
  present=$(psql_db -c "SELECT to_regclass('messaging_conversation') IS NOT NULL AND to_regclass('django_migrations') IS NOT NULL")
  [[ $present == t ]] || die "the $DB_WHERE holds no chat tables (run manage.py migrate?); nothing backed up"
}

### create ###

create() {
  read_database_url create
  find_client_for_server
  require_chat_schema
  local dir stamp name dump manifest snapshot facts pg_dump_version size sha
  dir=$(abspath "${BACKUP_DIR:-backups}")
  mkdir -p "$dir"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  name=$PGDATABASE-$stamp
  dump=$dir/$name.dump
  manifest=$dir/$name.json
  [[ ! -e $dump ]] || die "$dump exists already"
  # What a failed run leaves half-written is removed on the way out.
  PARTIALS=("$dump.partial" "$manifest.partial")
  trap 'rm -f "${PARTIALS[@]}"' EXIT
  pg_dump_version=$("$CLIENT_BIN/pg_dump" --version)

  # A session holds a snapshot open: pg_dump dumps it and the counts are read in it.
  coproc SNAPSHOT { psql_db 2>&1; }
  local to_session=${SNAPSHOT[1]} from_session=${SNAPSHOT[0]} session_pid=$SNAPSHOT_PID
  printf '%s\n' "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;" "SELECT pg_export_snapshot();" >&"$to_session"
  read -r -t 60 snapshot <&"$from_session" || die "no snapshot from the $DB_WHERE"
  [[ $snapshot =~ ^[0-9A-F]+-[0-9A-F]+(-[0-9]+)?$ ]] || die "no snapshot from the $DB_WHERE: $snapshot"

  log "dumping the $DB_WHERE (PostgreSQL $SERVER_VERSION) to $dump"
  "$CLIENT_BIN/pg_dump" --format=custom --snapshot="$snapshot" --file="$dump.partial" ||
    die "pg_dump failed; nothing backed up"
  printf '%s\n' "$FACTS_SQL" >&"$to_session"
  read -r -t 600 facts <&"$from_session" || die "could not count the rows of the $DB_WHERE"
  [[ $facts == '{'* ]] || die "could not count the rows of the $DB_WHERE: $facts"
  printf '%s\n' "COMMIT;" >&"$to_session"
  exec {to_session}>&-
  wait "$session_pid" || true

  size=$(stat -c %s "$dump.partial")
  sha=$(sha256sum "$dump.partial" | cut -d' ' -f1)
  FACTS=$facts FILE_NAME=$name.dump SIZE=$size SHA=$sha PG_DUMP_VERSION=$pg_dump_version CREATED_AT=$stamp \
    "$PY" - "$manifest.partial" <<'EOF'
import json
import os
import sys
from datetime import datetime

facts = json.loads(os.environ["FACTS"])
manifest = {
    "format": 1,
    "created_at": datetime.strptime(os.environ["CREATED_AT"], "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%dT%H:%M:%SZ"),
    "file": os.environ["FILE_NAME"],
    "size": int(os.environ["SIZE"]),
    "sha256": os.environ["SHA"],
    "database": facts["database"],
    "server_version": facts["server_version"],
    "pg_dump_version": os.environ["PG_DUMP_VERSION"],
    "tables": facts["tables"],
    "conversations": facts["conversations"],
    "migrations": facts["migrations"],
}
with open(sys.argv[1], "w") as handle:
    json.dump(manifest, handle, indent=2)
    handle.write("\n")
EOF
  # The manifest last: a dump without one is a backup that did not finish.
  mv "$dump.partial" "$dump"
  mv "$manifest.partial" "$manifest"
  log "$(summary "$facts") in $dump ($size bytes, sha256 $sha); manifest $manifest"
  echo "$dump"
}

# "N messages in M conversations, K users" from the facts (JSON) given.
summary() {
  FACTS=$1 "$PY" - <<'EOF'
import json
import os

facts = json.loads(os.environ["FACTS"])
tables = facts["tables"]
print(
    f"{tables.get('messaging_message', 0)} messages in {facts['conversations']['count']} conversations,"
    f" {tables.get('auth_user', 0)} users"
)
EOF
}

### restore ###

# The manifest's value at a path of keys, e.g. manifest_value FILE sha256.
manifest_value() {
  "$PY" -c '
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value[key]
print(value)' "$@"
}

restore() {
  local file=${1:-}
  [[ -n $file ]] || die "name the backup to restore: make restore FILE=backups/<database>-<time>.dump"
  [[ -f $file ]] || die "no such backup file: $file"
  local manifest=${file%.dump}.json
  [[ -f $manifest ]] || die "no manifest beside $file (expected $manifest); nothing restored"

  # The file first: a corrupt or incomplete copy is refused before anything is touched.
  local expected_size expected_sha size sha
  expected_size=$(manifest_value "$manifest" size) || die "$manifest is not a backup manifest"
  expected_sha=$(manifest_value "$manifest" sha256) || die "$manifest is not a backup manifest"
  size=$(stat -c %s "$file")
  [[ $size == "$expected_size" ]] ||
    die "$file has $size bytes, its manifest says $expected_size: an incomplete or damaged copy; nothing restored"
  sha=$(sha256sum "$file" | cut -d' ' -f1)
  [[ $sha == "$expected_sha" ]] ||
    die "$file's sha256 is $sha, its manifest says $expected_sha: a damaged copy; nothing restored"
  log "$file matches its manifest (sha256 $sha)"

  read_database_url restore
  find_client_for_server
  local dump_major
  dump_major=$(manifest_value "$manifest" pg_dump_version | grep -oE '[0-9]+' | head -n1)
  ((SERVER_MAJOR >= dump_major)) ||
    die "the backup was made by pg_dump $dump_major, the $DB_WHERE runs PostgreSQL $SERVER_VERSION: restore into PostgreSQL $dump_major or later"

  # Only into an empty database: a restore never mixes with or replaces rows that are there.
  local tables
  tables=$(psql_db -c "SELECT count(*) || ' (' || string_agg(table_schema || '.' || table_name, ', ' ORDER BY table_name) FILTER (WHERE n <= 5) || ')'
    FROM (SELECT table_schema, table_name, row_number() OVER (ORDER BY table_name) AS n FROM information_schema.tables
          WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')) t
    HAVING count(*) > 0")
  [[ -z $tables ]] || die "the $DB_WHERE is not empty: it has ${tables%% *} table(s) ${tables#* }.
  A backup is restored only into an empty database: drop and create it again
  (DROP DATABASE $PGDATABASE; CREATE DATABASE $PGDATABASE OWNER <the app's user>), or point DATABASE_URL at a new one."

  log "restoring $file into the $DB_WHERE (PostgreSQL $SERVER_VERSION)"
  "$CLIENT_BIN/pg_restore" --dbname="$PGDATABASE" --single-transaction --exit-on-error --no-owner --no-privileges "$file" ||
    die "pg_restore failed; the transaction was rolled back and the database is empty as before"

  # What was restored must be what was backed up.
  local facts
  facts=$(psql_db -c "$FACTS_SQL")
  FACTS=$facts "$PY" - "$manifest" <<'EOF' || die "the restored database differs from the backup's manifest (above)"
import json
import os
import sys

manifest = json.load(open(sys.argv[1]))
facts = json.loads(os.environ["FACTS"])
differences = [
    f"{part}: backed up {manifest[part]}, restored {facts[part]}"
    for part in ("tables", "conversations", "migrations")
    if manifest[part] != facts[part]
]
for line in differences:
    print(line, file=sys.stderr)
sys.exit(1 if differences else 0)
EOF
  psql_db -c "ANALYZE" # pg_restore leaves the planner without statistics
  log "restored $(summary "$facts") into the $DB_WHERE; counts, last seqs and migrations match the manifest"
  log "next: manage.py migrate (when this code is newer than the backup), then start the bridge and the web"
}

case ${1:-} in
  create) create ;;
  restore) restore "${2:-}" ;;
  *) echo "usage: $0 create | restore FILE" >&2; exit 2 ;;
esac
