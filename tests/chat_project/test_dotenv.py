"""`.env`: what the environment does not set, read by the settings and by scripts/run.sh alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chat_project.dotenv import read_dotenv
from tests.support.stack import ROOT

# The settings' two switches, read in a process of their own with nothing else set.
SHOW_SETTINGS = "import chat_project.settings as s; print(s.DEBUG, s.SECRET_KEY)"


def plain_environment(dotenv: Path, **variables: str) -> dict[str, str]:
    """An environment with no setting in it but `variables`, and the settings' .env at `dotenv`."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "DJANGO_ENV_FILE": str(dotenv)} | (
        variables
    )


def settings_with(dotenv: Path, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SHOW_SETTINGS],
        cwd=ROOT,
        env=plain_environment(dotenv, **variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_file_is_name_value_lines(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "# a comment\n"
        "\n"
        "DJANGO_DEBUG=1\n"
        "  SPACED = around the sign  \n"
        "QUOTED=\"a 'value' with # in it\"\n"
        "SINGLE='$HOME is not expanded'\n"
        "EMPTY=\n"
        "# COMMENTED=out\n"
        "not a setting\n"
        "URL=postgres://u:p@h:5432/db?x=1\r\n"
    )
    assert read_dotenv(dotenv) == {
        "DJANGO_DEBUG": "1",
        "SPACED": "around the sign",
        "QUOTED": "a 'value' with # in it",
        "SINGLE": "$HOME is not expanded",
        "EMPTY": "",
        "URL": "postgres://u:p@h:5432/db?x=1",
    }
    assert read_dotenv(tmp_path / "missing") == {}


def test_the_script_gets_what_the_environment_does_not_set_as_the_settings_read_it(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=8000\nHOST=127.0.0.1\nODD='it'\"s; $(touch x) `y`'\nEMPTY_HERE=from the file\n")
    exports = f"{sys.executable} -m chat_project.dotenv {dotenv}"
    script = f'eval "$({exports})"; printf "%s|" "$PORT" "$HOST" "$ODD" "$EMPTY_HERE"'
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env={**plain_environment(dotenv), "PYTHONPATH": str(ROOT), "PORT": "9000", "EMPTY_HERE": ""},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    # The environment wins; a variable set empty counts as unset, as in the settings.
    assert result.stdout == "9000|127.0.0.1|it'\"s; $(touch x) `y`|from the file|"
    assert not (tmp_path / "x").exists()


def test_the_settings_read_the_key_and_debug_from_the_file(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DJANGO_SECRET_KEY=from-the-file\nDJANGO_DEBUG=0\n")
    result = settings_with(dotenv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "from-the-file"]


def test_the_environment_wins_over_the_file(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DJANGO_SECRET_KEY=from-the-file\nDJANGO_DEBUG=0\n")
    result = settings_with(dotenv, DJANGO_SECRET_KEY="from-the-environment", DJANGO_DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "from-the-environment"]


def test_production_without_a_key_anywhere_still_fails_loudly(tmp_path):
    nothing = settings_with(tmp_path / "missing")
    assert nothing.returncode == 1
    assert "ImproperlyConfigured: Set DJANGO_SECRET_KEY" in nothing.stderr
    dotenv = tmp_path / ".env"
    dotenv.write_text("DJANGO_DEBUG=1\n")  # a local file without a key, in production
    overridden = settings_with(dotenv, DJANGO_DEBUG="0")
    assert overridden.returncode == 1
    assert "ImproperlyConfigured: Set DJANGO_SECRET_KEY" in overridden.stderr
