"""`manage.py check --deploy` is clean with the production environment .env.example documents."""

import os
import re
import secrets
import subprocess
import sys

from django.test import override_settings

from tests.support.stack import ROOT

ENV_EXAMPLE = ROOT / ".env.example"


def https_block() -> dict[str, str]:
    """Return the commented-out variables of the example's HTTPS section, as production sets them."""
    section = ENV_EXAMPLE.read_text().split("### HTTPS", 1)[1].split("\n###", 1)[0]
    return dict(re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=(\S+)$", section, re.MULTILINE))


def deploy_check(extra: dict[str, str]) -> subprocess.CompletedProcess:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "chat.example.com",
        **extra,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_production_environment():
    production = https_block()
    assert production["DJANGO_HTTPS"] == "1"
    result = deploy_check(production)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_one_switch_is_enough():
    result = deploy_check({"DJANGO_HTTPS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_the_https_settings_check_deploy_names_what_is_missing():
    result = deploy_check({})
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr + result.stdout


@override_settings(SECURE_SSL_REDIRECT=True, SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_the_redirect_spares_probes_and_trusts_the_proxy(client):
    response = client.get("/api/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/api/"
    assert client.get("/api/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
    assert client.get("/healthz").status_code == 200
