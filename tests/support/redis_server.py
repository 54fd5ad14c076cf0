"""A Redis server of a test's or benchmark's own (scripts/redis.sh), beside the one `make test` starts.

The channel layer shards over several Redis servers (REDIS_URL with several
URLs); a test of that needs a second server, started here on a port of its
own and stopped after.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("TEST_RUN_DIR", ROOT / ".run" / "test"))


def redis_script(command: str, port: int, directory: Path) -> None:
    """Run `scripts/redis.sh start|stop` for the server on `port` whose files are in `directory`."""
    env = {**os.environ, "REDIS_PORT": str(port), "REDIS_DIR": str(directory)}
    result = subprocess.run(
        [str(ROOT / "scripts" / "redis.sh"), command], env=env, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"scripts/redis.sh {command} on port {port} failed:\n{result.stderr[-2000:]}")


@contextmanager
def redis_server(port: int, name: str) -> Iterator[str]:
    """Start an empty Redis on 127.0.0.1:`port` (files in the run directory under `name`); yield its URL."""
    directory = RUN_DIR / name
    redis_script("start", port, directory)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        redis_script("stop", port, directory)
