"""deploy/prometheus: the scrape configuration and the alert rules, checked by Debian's promtool.

promtool validates prometheus.yml and alerts.yml as Prometheus loads them and
runs alerts_test.yml, the unit tests of each alert (firing, and not firing).
The checks here add what promtool does not know: every alert tells the
operator how bad it is and what to do, every metric it reads is one the
project serves, and every alert has tests on both sides of its condition.
A real Prometheus scraping a real bridge is tests/integration/test_prometheus.py.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.stack import ROOT

DEPLOY = ROOT / "deploy" / "prometheus"
# Where the project's metrics are named: each app's metrics.py and the web's /metrics.
METRIC_SOURCES = [
    ROOT / "messaging" / "metrics.py",
    ROOT / "kafka_bridge" / "metrics.py",
    ROOT / "chat_project" / "metrics.py",
]


def promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make test` installs it (apt-get install prometheus)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    groups = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_scrape_configuration_is_valid_and_loads_the_rules():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    # The defaults of manage.py serve and of BRIDGE_HTTP_HOST:BRIDGE_HTTP_PORT.
    assert targets == {"chat-web": ["127.0.0.1:8000"], "chat-bridge": ["127.0.0.1:9101"]}


def test_the_rules_are_valid():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_the_alerts_unit_tests_pass():
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_see_a_for_duration_changed(tmp_path):
    """Positive control: the unit tests fail when an alert waits longer than they expect."""
    shutil.copy(DEPLOY / "alerts_test.yml", tmp_path)
    text = (DEPLOY / "alerts.yml").read_text()
    changed = re.sub(r"(expr: up\{job=\"chat-bridge\"\} == 0\n\s+for:) 1m", r"\1 2m", text)
    assert changed != text
    (tmp_path / "alerts.yml").write_text(changed)
    result = promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "alertname: ChatBridgeDown, time: 3m" in result.stdout + result.stderr


@pytest.mark.parametrize("rule", rules(), ids=lambda rule: rule["alert"])
def test_each_alert_waits_says_how_bad_and_what_to_do(rule):
    assert re.fullmatch(r"\d+[smh]", rule["for"]), "a `for:` duration: one bad scrape is no alert"
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert rule["annotations"]["summary"]
    assert len(rule["annotations"]["description"]) > 100, "the description tells the operator what to do"


def test_the_alerts_read_only_metrics_the_project_serves():
    served = "\n".join(path.read_text() for path in METRIC_SOURCES)
    used = {name for rule in rules() for name in re.findall(r"\b((?:chat|kafka)_[a-z_]+)", rule["expr"])}
    assert {"kafka_consumer_lag", "chat_outbox_records", "kafka_producer_errors_total"} <= used
    for name in used:
        # Counters are named without _total in prometheus_client and served with it.
        assert f'"{name.removesuffix("_total")}"' in served, f"{name} is not a metric of the project"


def test_each_alert_has_tests_that_fire_it_and_tests_that_do_not():
    tests = yaml.safe_load((DEPLOY / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules():
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == rule["alert"]}
        assert outcomes == {True, False}, rule["alert"]
