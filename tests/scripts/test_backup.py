"""scripts/backup.sh on the local default, a SQLite file: it refuses and says what to do instead."""

import os
import subprocess

from tests.support.stack import ROOT


def test_backup_of_sqlite_is_refused_with_what_to_do_instead(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "DJANGO_ENV_FILE": "/dev/null",
        "BACKUP_DIR": str(tmp_path),
    }
    result = subprocess.run(
        ["scripts/backup.sh", "create"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"the database is the SQLite file {ROOT / 'db.sqlite3'}" in result.stderr
    assert "Stop make run and copy the file" in result.stderr and '".backup backups/db.sqlite3"' in result.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written
