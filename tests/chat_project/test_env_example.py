"""`.env.example` lists every setting the project reads, and works as `.env` as it is."""

import os
import re
import shutil
import subprocess
import sys

from chat_project.dotenv import read_dotenv
from tests.support.settings_env import settings_variables
from tests.support.stack import ROOT

ENV_EXAMPLE = ROOT / ".env.example"
# Read by scripts/run.sh (KAFKA_BROKERS by the scripts/kafka.sh it runs), not by the settings.
MAKE_RUN_VARIABLES = {"HOST", "PORT", "DB", "KAFKA_BROKERS"}


def listed_variables() -> dict[str, bool]:
    """Return each variable .env.example names, and whether it is set (True) or only shown commented out."""
    listed: dict[str, bool] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.match(r"^(#\s*)?([A-Z][A-Z0-9_]*)=", line):
            listed[match.group(2)] = listed.get(match.group(2), False) or not match.group(1)
    return listed


def test_every_variable_the_settings_read_is_listed():
    missing = settings_variables() - set(listed_variables())
    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_every_listed_variable_is_read_by_something():
    stale = set(listed_variables()) - settings_variables() - MAKE_RUN_VARIABLES
    assert not stale, f".env.example lists variables nothing reads: {sorted(stale)}"


def test_the_example_leaves_make_run_to_start_its_own_services():
    listed = listed_variables()
    for address in ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        assert address in listed and not listed[address], f"{address} set: make run would not start its own"


def test_settings_load_and_check_clean_with_the_example_as_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, dotenv)
    values = read_dotenv(dotenv)
    assert values["DJANGO_DEBUG"] == "1"
    assert values["HOST"] in values["DJANGO_ALLOWED_HOSTS"].split(",")
    # Nothing but the file: the settings read it themselves, as in a terminal beside `make run`.
    plain = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DJANGO_ENV_FILE": str(dotenv)}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=plain,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
