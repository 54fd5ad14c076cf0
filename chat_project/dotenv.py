"""The `.env` file: the settings of one checkout, for what the environment does not set.

`make run` writes one on its first run, with a secret key of its own and
DJANGO_DEBUG=1, so that every `manage.py` command (createsuperuser in a second
terminal) runs with the server's settings and no variable in front. The
settings read it (chat_project/settings.py) and so does scripts/run.sh, by
running this module. The environment wins over the file: a variable set there
overrides `.env` for one run.

The lines are `NAME=value`; blank lines and `#` comments are skipped and the
quotes around a quoted value removed, which docker compose's `env_file` reads
alike. Nothing is expanded.

    python -m chat_project.dotenv FILE

prints, as shell `export` lines, what FILE sets and the environment does not.
This module imports nothing of Django: the script runs it before any setting is known.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
QUOTES = ("'", '"')


def read_dotenv(path: Path) -> dict[str, str]:
    """Return the settings a .env file holds ({} when there is no such file)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    values = {}
    for line in text.splitlines():
        if (match := LINE.match(line)) is None:
            continue  # blank, a comment, or not a setting
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in QUOTES:
            value = value[1:-1]
        values[name] = value
    return values


def missing_from_environment(values: dict[str, str]) -> dict[str, str]:
    """Return the values whose variable the environment leaves unset or empty (the environment wins)."""
    return {name: value for name, value in values.items() if not os.environ.get(name)}


def main(argv: list[str]) -> int:
    """Print `export NAME=value` for each setting of the file the environment does not set."""
    if len(argv) != 1:
        print("usage: python -m chat_project.dotenv FILE", file=sys.stderr)
        return 2
    for name, value in missing_from_environment(read_dotenv(Path(argv[0]))).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
