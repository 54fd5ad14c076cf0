"""`make run` (scripts/run.sh) as a newcomer meets it, in a copy of the checkout of its own.

The copy has no `.env` and no database: what the first run writes and starts
is what a fresh clone gets. Its services are the ones `make test` started
(run.sh uses a service whose address it is given), its web server a free
port, its bridge's HTTP endpoint a free one, and its Kafka consumer groups
and Redis keys names of their own, so that it runs beside a developer's
`make run` and the other tests.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from chat_project.dotenv import read_dotenv
from tests.support.settings_env import settings_variables
from tests.support.stack import LOG_DIR, ROOT, free_port, loop_group_suffixes, require_env, start_group_at_end

BANNER = "Chat backend is up"
GROUP = "communication-service-group-make-run"
# What a checkout holds that a fresh clone does not.
LOCAL_STATE = (".git", ".venv", ".run", ".env", "db.sqlite3*", "staticfiles", "__pycache__", "*.pyc", ".*_cache")


def checkout_copy(target: Path) -> Path:
    """Copy this checkout as a fresh clone would have it (its virtualenv shared) and return the copy."""
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(*LOCAL_STATE), symlinks=True)
    (target / ".venv").symlink_to((ROOT / ".venv").resolve())
    return target


def plain_environment(**variables: str) -> dict[str, str]:
    """A terminal's environment: no setting of the project in it but `variables`."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"} | variables


def manage(checkout: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    """Run `.venv/bin/python manage.py ARGS` in the checkout, as typed in a second terminal."""
    return subprocess.run(
        [".venv/bin/python", "manage.py", *args],
        cwd=checkout,
        env=plain_environment(**variables),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_first_run_writes_a_dotenv_with_a_key_of_its_own_and_later_runs_keep_it(tmp_path):
    checkout = checkout_copy(tmp_path / "chat")
    # DB=nonsense stops the script right after it has read its settings.
    first = subprocess.run(
        ["scripts/run.sh"], cwd=checkout, env=plain_environment(DB="nonsense"), capture_output=True, text=True
    )
    assert first.returncode == 2, first.stderr
    dotenv = checkout / ".env"
    values = read_dotenv(dotenv)
    assert set(values) == {"DJANGO_SECRET_KEY", "DJANGO_DEBUG"}
    assert values["DJANGO_DEBUG"] == "1"
    assert len(values["DJANGO_SECRET_KEY"]) >= 50
    assert set(values) <= settings_variables()
    assert dotenv.stat().st_mode & 0o077 == 0, "the file holds a secret: its owner's only"
    written = dotenv.read_text()
    subprocess.run(["scripts/run.sh"], cwd=checkout, env=plain_environment(DB="nonsense"), capture_output=True)
    assert dotenv.read_text() == written  # the same key: sessions and tokens survive a restart
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    """Start scripts/run.sh in a fresh copy; yield the copy, its URL and its output file (growing while it runs)."""
    checkout = checkout_copy(tmp_path_factory.mktemp("make-run") / "chat")
    for suffix in loop_group_suffixes():
        start_group_at_end(GROUP + suffix)  # earlier tests' records are not this server's
    port = free_port()
    env = plain_environment(
        HOST="127.0.0.1",
        PORT=str(port),
        REDIS_URL=require_env("REDIS_URL"),
        REDIS_PREFIX="chat-make-run",
        KAFKA_BOOTSTRAP_SERVERS=require_env("KAFKA_BOOTSTRAP_SERVERS"),
        KAFKA_CONSUMER_GROUP=GROUP,
        BRIDGE_HTTP_PORT="0",
        WEB_PROCESSES="1",
    )
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    output = LOG_DIR / "make-run.log"
    with output.open("wb") as log:
        # A session of its own: run.sh and everything it starts are one process group.
        script = subprocess.Popen(
            ["scripts/run.sh"], cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield checkout, f"http://127.0.0.1:{port}", output
    finally:
        script.send_signal(signal.SIGINT)  # Ctrl+C
        try:
            script.wait(120)  # a loaded machine stops five processes slowly
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
            raise


def wait_for_banner(output: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while BANNER not in output.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise AssertionError(f"no banner after {timeout}s:\n{output.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def test_the_banner_comes_once_the_server_is_ready_and_the_demo_runs_at_once(make_run):
    checkout, base, output = make_run
    wait_for_banner(output)
    # At once, as `make demo` typed the moment the banner shows.
    assert requests.get(f"{base}/readyz", timeout=10).status_code == 200
    demo = manage(checkout, "chat_demo", "--url", base, "--timeout", "30")
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert '"status": "READ"' in demo.stdout


def test_manage_py_works_in_a_second_terminal_with_no_variable_in_front(make_run):
    checkout, _base, output = make_run
    wait_for_banner(output)
    text = output.read_text(errors="replace")
    (hint,) = re.findall(r"create a login: (.*)\)", text)
    assert hint == ".venv/bin/python manage.py createsuperuser"
    check = manage(checkout, "check")
    assert check.returncode == 0, check.stderr
    admin = manage(
        checkout,
        "createsuperuser",
        "--noinput",
        "--username",
        "admin",
        "--email",
        "admin@example.com",
        DJANGO_SUPERUSER_PASSWORD="a long password 1",
    )
    assert admin.returncode == 0, admin.stderr
    # The broker's address is the one thing not in .env here: this copy's services are the tests'.
    status = manage(checkout, "kafka_status", KAFKA_BOOTSTRAP_SERVERS=require_env("KAFKA_BOOTSTRAP_SERVERS"))
    assert status.returncode == 0, status.stderr
    assert "ImproperlyConfigured" not in status.stderr
