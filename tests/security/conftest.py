"""A secured broker and Redis of their own, started once per module, and a system under test on them.

The broker is the one `KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start` makes
(SASL_SSL, SCRAM users, ACLs); Redis asks for a password. Both listen on
ports a fixed step above those `make test` gave its own services, and keep
their data beside them, so that each test run has its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from chat_project.dotenv import read_dotenv
from tests.support.stack import ROOT, Stack, require_env

# Above the ports of `make test`'s own services: no other run's base ports or steps land here.
PORT_STEP = 50
# The senders of the fault scenario are load generators, not abusers.
UNLIMITED = {"CHAT_SEND_BURST": "1000000", "CHAT_SEND_RATE_PER_SECOND": "1000000"}
# A scenario's figures, printed at the end of the run (as tests/faults does).
FIGURES: list[tuple[str, dict]] = []


@dataclass
class Secured:
    """The secured services: the environment of their scripts, and what the service connects with."""

    script_env: dict[str, str]
    kafka_dir: Path
    redis_dir: Path
    # The service's settings for the broker (KAFKA_BOOTSTRAP_SERVERS, KAFKA_SASL_*, KAFKA_SSL_CA_LOCATION).
    service_env: dict[str, str]
    # A librdkafka client's settings as admin, the broker's super user.
    admin_config: dict[str, str]
    redis_password: str
    # What the scripts printed (they must not print a password either).
    script_output: list[str] = field(default_factory=list)
    # Passwords the tests made (of users they added), by whose they are.
    test_passwords: dict[str, str] = field(default_factory=dict)
    # The broker's start, under way (wait_for_kafka() waits for it).
    starting: Future[None] | None = None

    def wait_for_kafka(self) -> None:
        """Wait until the broker is up, then read what its clients connect with."""
        assert self.starting is not None
        self.starting.result()
        security = self.kafka_dir / "security"
        self.service_env = read_dotenv(security / "service.env")
        properties = (security / "admin.librdkafka.properties").read_text().splitlines()
        self.admin_config = {
            "bootstrap.servers": self.service_env["KAFKA_BOOTSTRAP_SERVERS"],
            **dict(line.split("=", 1) for line in properties if "=" in line),
        }

    @property
    def redis_url(self) -> str:
        return f"redis://:{self.redis_password}@127.0.0.1:{self.script_env['REDIS_PORT']}/0"

    def run(self, script: str, action: str) -> None:
        result = subprocess.run(
            [str(ROOT / "scripts" / script), action],
            env=self.script_env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        self.script_output.append(result.stdout + result.stderr)
        assert result.returncode == 0, f"{script} {action} failed:\n{result.stdout}\n{result.stderr}"

    def passwords(self) -> dict[str, str]:
        """Return every password of the secured services, by whose it is."""
        found = {"redis": self.redis_password, **self.test_passwords}
        for path in (self.kafka_dir / "security").glob("*.password"):
            found[path.stem] = path.read_text().strip()
        return found


@pytest.fixture(scope="module")
def secured() -> Iterator[Secured]:
    run_dir = Path(require_env("KAFKA_DATA_DIR")).parent
    kafka_dir, redis_dir = run_dir / "kafka-secure", run_dir / "redis-secure"
    script_env = {
        **os.environ,
        "KAFKA_SECURITY": "sasl_ssl",
        "KAFKA_PORT": str(int(require_env("KAFKA_PORT")) + PORT_STEP),
        "KAFKA_CONTROLLER_PORT": str(int(require_env("KAFKA_CONTROLLER_PORT")) + PORT_STEP),
        "KAFKA_DATA_DIR": str(kafka_dir),
        "REDIS_PORT": str(int(require_env("REDIS_PORT")) + PORT_STEP),
        "REDIS_DIR": str(redis_dir),
        "REDIS_PASSWORD": secrets.token_hex(16),
    }
    services = Secured(script_env, kafka_dir, redis_dir, {}, {}, script_env["REDIS_PASSWORD"])
    # A fresh broker every run: new users, passwords and certificates, no topics.
    services.run("kafka.sh", "stop")
    shutil.rmtree(kafka_dir, ignore_errors=True)
    background = ThreadPoolExecutor(1)
    try:
        # The broker takes longest: the database of the stack is made meanwhile (secured_stack).
        services.starting = background.submit(services.run, "kafka.sh", "start")
        services.run("redis.sh", "start")
        yield services
    finally:
        background.shutdown()  # waits for a start still under way
        services.run("kafka.sh", "stop")
        services.run("redis.sh", "stop")


@pytest.fixture(scope="module")
def secured_stack(secured: Secured) -> Iterator[Stack]:
    """A system (database, bridge, web) on Kafka over SASL_SSL as the service's user, and Redis with its password."""
    stack = Stack.create_database("secured", REDIS_URL=secured.redis_url, **UNLIMITED)
    try:
        secured.wait_for_kafka()
        stack.extra_env.update(secured.service_env)
        stack.prepare_kafka()
        with ThreadPoolExecutor(2) as pool:
            bridge = pool.submit(stack.start_bridge)
            _web, stack.base = pool.submit(stack.start_web).result()  # type: ignore[attr-defined]
            stack.bridge = bridge.result()  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def report(request: pytest.FixtureRequest):
    """Record a scenario's figures; they are printed at the end of the run."""

    def record(figures: dict) -> None:
        FIGURES.append((request.node.name, figures))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("secured scenarios")
    for name, figures in FIGURES:
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
