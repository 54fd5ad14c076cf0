"""scripts/lib.sh: installing packages waits for another install instead of failing.

apt-get runs against a package database of its own here (APT_CONFIG points
its lists, its dpkg status and its caches into a temporary directory, with no
package sources), so holding that database's locks stops nobody else's install.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.stack import ROOT

# Long enough that an install that does not wait fails well before it.
HOLD_SECONDS = 2.0


@pytest.fixture
def apt_sandbox(tmp_path: Path) -> Path:
    """Return an apt configuration whose state lives under tmp_path (a copy of this machine's dpkg status)."""
    for folder in ("lists/partial", "dpkg", "cache/archives/partial", "sources.list.d"):
        (tmp_path / folder).mkdir(parents=True)
    shutil.copy("/var/lib/dpkg/status", tmp_path / "dpkg" / "status")
    (tmp_path / "sources.list").write_text("")
    config = tmp_path / "apt.conf"
    config.write_text(
        f'Dir::State::Lists "{tmp_path}/lists";\n'
        f'Dir::State::status "{tmp_path}/dpkg/status";\n'
        f'Dir::Cache "{tmp_path}/cache";\n'
        f'Dir::Etc::sourcelist "{tmp_path}/sources.list";\n'
        f'Dir::Etc::sourceparts "{tmp_path}/sources.list.d";\n'
    )
    return config


def hold_lock(path: Path, seconds: float) -> None:
    """Take apt's kind of lock (fcntl) on path, as a running apt-get does, and let it go after `seconds`."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    threading.Timer(seconds, os.close, [fd]).start()


def apt_install(config: Path, package: str) -> tuple[subprocess.CompletedProcess, float]:
    script = f"SERVICE=test; source scripts/lib.sh; apt_install {package}"
    start = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**os.environ, "APT_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result, time.monotonic() - start


@pytest.mark.parametrize(
    "lock",
    [
        "lists/lock",  # held by another `apt-get update`
        "dpkg/lock-frontend",  # held by another `apt-get install`
    ],
)
def test_an_install_waits_for_the_one_under_way_and_then_succeeds(apt_sandbox: Path, lock: str):
    # Without the lock held, installing an installed package is quick and changes nothing.
    result, alone = apt_install(apt_sandbox, "bash")
    assert result.returncode == 0, result.stderr
    hold_lock(apt_sandbox.parent / lock, HOLD_SECONDS)
    result, waited = apt_install(apt_sandbox, "bash")
    assert result.returncode == 0, result.stdout + result.stderr
    assert waited >= HOLD_SECONDS > alone
