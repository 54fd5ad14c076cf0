"""deploy/prometheus with a real Prometheus (Debian's package) scraping the real web and bridge.

The configuration is prometheus.yml with the test's addresses and second-long
scrape and evaluation intervals, and the rules are alerts.yml as written but
for ChatBridgeDown's `for:`, shortened so that the test need not wait a
minute. With the bridge up both targets are up and the alert is not firing;
once the bridge stops, the alert fires.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.stack import LOG_DIR, Proc, Stack, free_port, start_group_at_end
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
INTERVAL = "1s"
BRIDGE_DOWN_FOR = "3s"


def render_config(directory: Path, *, web: str, bridge: str) -> Path:
    """Write prometheus.yml and alerts.yml for the test's targets into `directory`; return the configuration."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=INTERVAL, scrape_timeout=INTERVAL, evaluation_interval=INTERVAL)
    targets = {"chat-web": web, "chat-bridge": bridge}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets.pop(job["job_name"])]}]
    assert not targets, f"prometheus.yml has no job {sorted(targets)}"

    alerts = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    rules = [rule for group in alerts["groups"] for rule in group["rules"]]
    (bridge_down,) = [rule for rule in rules if rule["alert"] == "ChatBridgeDown"]
    bridge_down["for"] = BRIDGE_DOWN_FOR
    assert config["rule_files"] == ["alerts.yml"]
    (directory / "alerts.yml").write_text(yaml.safe_dump(alerts))
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """Start Prometheus for a web and a bridge address; return its base URL."""
    procs: list[subprocess.Popen] = []

    def start(web: str, bridge: str) -> str:
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: `make test` installs it (apt-get install prometheus)"
        config = render_config(tmp_path, web=web, bridge=bridge)
        base = f"http://127.0.0.1:{free_port()}"
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / "prometheus.log"
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address={base.removeprefix('http://')}",
        ]
        with log_path.open("ab") as log:
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

        def ready() -> bool:
            assert procs[-1].poll() is None, f"prometheus exited:\n{log_path.read_text()[-3000:]}"
            return requests.get(f"{base}/-/ready", timeout=5).status_code == 200

        wait_until(ready, 60, "Prometheus did not become ready", every=0.5, ignoring=(requests.RequestException,))
        return base

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def api(base: str, path: str) -> Any:
    answer = requests.get(f"{base}/api/v1/{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def bridge_down_alerts(base: str) -> list[dict]:
    return [alert for alert in api(base, "alerts")["alerts"] if alert["labels"]["alertname"] == "ChatBridgeDown"]


def test_bridge_down_fires_once_the_bridge_stops(stack: Stack, base: str, prometheus):
    # A bridge of its own, in a group of its own: stopping it takes nothing from the other tests.
    group = f"{stack.env()['KAFKA_CONSUMER_GROUP']}-prometheus"
    start_group_at_end(group)
    bridge: Proc = stack.start_bridge("--loops", "notifications", "--group", group, "--no-relay")
    bridge_target = bridge.http.removeprefix("http://")
    try:
        server = prometheus(base.removeprefix("http://"), bridge_target)

        # Positive path: both targets scraped and up, the rules evaluated after that, no alert.
        def scraped() -> bool:
            targets = api(server, "targets")["activeTargets"]
            return {t["labels"]["job"]: t["health"] for t in targets} == {"chat-web": "up", "chat-bridge": "up"}

        wait_until(
            scraped,
            60,
            "Prometheus did not scrape the web and the bridge",
            every=0.5,
            ignoring=(requests.RequestException,),
        )
        scraped_at = time.time()

        def evaluated_since_scraped() -> bool:
            (group_state,) = [g for g in api(server, "rules")["groups"] if g["name"] == "chat"]
            return all(rule["health"] == "ok" for rule in group_state["rules"]) and (
                _unix(group_state["lastEvaluation"]) > scraped_at
            )

        wait_until(
            evaluated_since_scraped,
            30,
            "the rules were not evaluated after the first scrapes",
            every=0.5,
            ignoring=(requests.RequestException,),
        )
        up = api(server, f'query?query=up{{job="chat-bridge",instance="{bridge_target}"}}')["result"]
        assert [sample["value"][1] for sample in up] == ["1"]
        assert bridge_down_alerts(server) == []

        def loop_ready() -> bool:
            query = f'query?query=kafka_bridge_loop_ready{{instance="{bridge_target}",loop="notifications"}}'
            return [sample["value"][1] for sample in api(server, query)["result"]] == ["1"]

        wait_until(
            loop_ready,
            60,
            "Prometheus never saw the bridge's loop ready",
            every=0.5,
            ignoring=(requests.RequestException,),
        )
        web_ready = api(server, 'query?query=chat_web_ready{job="chat-web"}')["result"]
        assert [sample["value"][1] for sample in web_ready] == ["1"]
        assert bridge_down_alerts(server) == []

        bridge.terminate()

        def firing() -> bool:
            alerts = bridge_down_alerts(server)
            return any(a["state"] == "firing" and a["labels"]["instance"] == bridge_target for a in alerts)

        wait_until(
            firing,
            60,
            "ChatBridgeDown did not fire with the bridge stopped",
            every=0.5,
            ignoring=(requests.RequestException,),
        )
        (alert,) = bridge_down_alerts(server)
        assert alert["labels"]["severity"] == "critical" and alert["labels"]["job"] == "chat-bridge"
        assert alert["annotations"]["summary"] == f"Bridge {bridge_target} does not answer its /metrics"
    finally:
        bridge.terminate()
        stack.procs.remove(bridge)


def _unix(rfc3339: str) -> float:
    """Seconds since the epoch of a timestamp of Prometheus's API (nanoseconds, Z or an offset)."""
    trimmed = rfc3339.replace("Z", "+00:00")
    if "." in trimmed:  # Python reads at most microseconds
        head, rest = trimmed.split(".", 1)
        digits = len(rest) - len(rest.lstrip("0123456789"))
        trimmed = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    return datetime.fromisoformat(trimmed).timestamp()
