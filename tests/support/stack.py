"""Real processes for integration tests: daphne and run_kafka_bridge.

`make test` starts PostgreSQL, Redis and Kafka and exports their addresses;
a Stack creates a fresh database for the processes it starts, migrates it,
and starts, stops and kills daphne and bridge processes on demand, each
logging to a file so that a failing test can show what the server saw.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from chat_project.kafka_security import kafka_security

ROOT = Path(__file__).resolve().parents[2]
# What a broker that just (re)started answers for a while about consumer groups.
COORDINATOR_WARMING_UP = (
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
)
# The line a bridge logs with the address of its HTTP endpoint.
BRIDGE_HTTP_LINE = re.compile(r"Bridge HTTP endpoint on (http://\S+) ")
LOG_DIR = Path(os.environ.get("TEST_LOG_DIR", ROOT / ".run" / "test" / "logs"))


def require_env(name: str) -> str:
    """Return a service address `make test` exports; a missing service fails, never skips."""
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the tests with `make test`, which starts the services.")
    return value


def kafka_config(env: dict[str, str] | None = None) -> dict[str, str]:
    """Return a Kafka client's settings for the broker of `env` (default: the one `make test` started).

    The address, and the security settings a secured broker's environment holds,
    read the way the settings read them.
    """
    env = os.environ if env is None else env
    bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS") or require_env("KAFKA_BOOTSTRAP_SERVERS")
    return {"bootstrap.servers": bootstrap, **kafka_security(lambda name: env.get(name, ""))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recreate_database(server_url: str, name: str) -> str:
    """Drop and create a database on the server of `server_url`; return its URL."""
    parts = urlsplit(server_url)
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def loop_group_suffixes() -> set[str]:
    """Return the consumer group suffixes of the bridge's loops (setting Django up if needed)."""
    import django
    from django.conf import settings

    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
        django.setup()
    from kafka_bridge.consume.registry import loops

    return {spec.group_suffix for spec in loops().values()}


def start_group_at_end(group: str, config: dict[str, str] | None = None) -> None:
    """Set a new consumer group's offsets at the topics' current ends (on the broker of `config`).

    Stacks share one broker: a new stack's bridge must not replay the records
    earlier stacks produced (their user ids mean other users here). The admin
    API sets a group's offsets without joining it (a bare commit from outside
    the group is refused for some group names on this broker).
    """
    from kafka_bridge.consume.registry import topics

    config = config or kafka_config()
    consumer = Consumer({**config, "group.id": f"{group}-probe"})
    try:
        offsets = []
        for topic in topics():
            partitions = consumer.list_topics(topic.name, timeout=10).topics[topic.name].partitions
            for partition in partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(topic.name, partition), timeout=10)
                offsets.append(TopicPartition(topic.name, partition, high))
    finally:
        consumer.close()
    admin = AdminClient(config)
    for attempt in range(60):
        (future,) = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(group, offsets)]).values()
        try:
            result = future.result(timeout=15)
            failed = [tp.error for tp in result.topic_partitions if tp.error is not None]
            if failed:
                raise KafkaException(failed[0])
            return
        except KafkaException as exc:  # a broker that just (re)started is still loading groups
            error = exc.args[0]
            waiting = error.retriable() or error.code() in COORDINATOR_WARMING_UP
            if not waiting or attempt == 59:
                raise
            time.sleep(0.5)


def group_lag(group: str, topic: str, config: dict[str, str] | None = None) -> int:
    """Records of `topic` that `group` has not committed yet (a partition it never committed counts whole)."""
    admin = AdminClient(config or kafka_config())
    partitions = admin.list_topics(topic, timeout=10).topics[topic].partitions
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    (future,) = admin.list_consumer_group_offsets([request]).values()
    committed = {tp.partition: tp.offset for tp in future.result(timeout=15).topic_partitions}
    ends = admin.list_offsets({TopicPartition(topic, p): OffsetSpec.latest() for p in partitions})
    lag = 0
    for tp, end in ends.items():
        high = end.result(timeout=15).offset
        lag += high - max(committed.get(tp.partition, -1), 0)
    return lag


def wait_group_caught_up(group: str, topic: str, timeout: float = 60.0, config: dict[str, str] | None = None) -> None:
    """Wait until `group` has committed every record of `topic` produced so far (its lag is zero).

    The bridge commits a record only after handling it, so a zero lag means
    every record produced before the call was handled: what a test must know
    before it asserts that handling one changed nothing.
    """
    deadline = time.monotonic() + timeout
    while (lag := group_lag(group, topic, config)) > 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"group {group} still {lag} record(s) behind on {topic} after {timeout}s")
        time.sleep(0.1)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    # Where this process's log starts in its file (the file may hold earlier runs).
    log_start: int = 0
    # A bridge's own HTTP endpoint (/metrics, /healthz, /readyz), e.g. http://127.0.0.1:40123.
    http: str = ""

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self, timeout: float = 15.0) -> float:
        """Send SIGTERM and wait; return the seconds it took to exit."""
        start = time.monotonic()
        if self.alive:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return time.monotonic() - start

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up."""
        if self.alive:
            self.popen.kill()
            self.popen.wait()

    def log(self) -> str:
        """Return what this process logged (not earlier runs' lines in the same file)."""
        with self.log_path.open("rb") as handle:
            handle.seek(self.log_start)
            return handle.read().decode(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


@dataclass
class Stack:
    """The processes of one system under test, sharing one database."""

    name: str
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    def create(cls, name: str, **extra_env: str) -> Stack:
        stack = cls.create_database(name, **extra_env)
        stack.prepare_kafka()
        return stack

    @classmethod
    def create_database(cls, name: str, **extra_env: str) -> Stack:
        """Return a stack with its database created and migrated; prepare_kafka() does the rest of create()."""
        database_url = recreate_database(require_env("DATABASE_URL"), f"chat_{name}")
        stack = cls(name=name, database_url=database_url, extra_env=extra_env)
        stack.manage("migrate", "--noinput")
        return stack

    def prepare_kafka(self) -> None:
        """Create the topics (if missing), and the stack's consumer groups at the topics' ends."""
        self.manage("kafka_topics")
        for suffix in loop_group_suffixes():
            start_group_at_end(self.env()["KAFKA_CONSUMER_GROUP"] + suffix, self.kafka_config())

    def kafka_config(self) -> dict[str, str]:
        """Return a Kafka client's settings as the stack's processes have them (broker, user, CA)."""
        return kafka_config(self.env())

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": self.database_url,
                "REDIS_URL": require_env("REDIS_URL"),
                "KAFKA_BOOTSTRAP_SERVERS": require_env("KAFKA_BOOTSTRAP_SERVERS"),
                "DJANGO_SECRET_KEY": "integration-tests",
                "DJANGO_DEBUG": "0",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "OUTBOX_RELAY_AUTOSTART": "1",
                "PYTHONUNBUFFERED": "1",
                # Stacks share the broker and Redis, never each other's records or groups.
                "KAFKA_CONSUMER_GROUP": f"communication-service-group-{self.name}",
                "REDIS_PREFIX": f"chat-{self.name}",
                # Every test registers and logs in its users from 127.0.0.1.
                "CHAT_REGISTER_RATE_PER_ADDRESS": "1000000/s",
                "CHAT_LOGIN_RATE_PER_ADDRESS": "1000000/s",
            }
        )
        env.update(self.extra_env)
        return env

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=120
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log_path = LOG_DIR / f"{self.name}-{name}.log"
        log = log_path.open("ab")
        start = log.tell()
        popen = subprocess.Popen(
            argv, cwd=ROOT, env={**self.env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        proc = Proc(name, popen, log_path, log_start=start)
        self.procs.append(proc)
        return proc

    def start_web(
        self,
        port: int | None = None,
        processes: int = 1,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        ready: bool = True,
    ) -> tuple[Proc, str]:
        """Start daphne (`processes` of them on one port) and wait until /readyz answers 200.

        With `ready=False`, wait only until /readyz answers at all (for a server that cannot be ready).
        Return the process (the parent when there are several) and its base URL (on 127.0.0.1).
        """
        port = port or free_port()
        proc = self._spawn(
            f"web-{port}",
            [sys.executable, "manage.py", "serve", "--host", host, "--port", str(port), "--processes", str(processes)],
            env,
        )
        base = f"http://127.0.0.1:{port}"
        wanted = {200} if ready else {200, 503}
        self._wait(proc, lambda: requests.get(f"{base}/readyz", timeout=10).status_code in wanted)
        return proc, base

    def start_bridge(self, *args: str, env: dict[str, str] | None = None) -> Proc:
        """Start run_kafka_bridge and wait until its consumers have joined the group.

        Each bridge's HTTP endpoint takes a free port (many run at once); `proc.http` is its address.
        """
        proc = self._spawn(
            f"bridge-{len(self.procs)}",
            [sys.executable, "manage.py", "run_kafka_bridge", *args],
            {"BRIDGE_HTTP_PORT": "0", **(env or {})},
        )
        self._wait(proc, lambda: "Consuming " in proc.log() and BRIDGE_HTTP_LINE.search(proc.log()))
        match = BRIDGE_HTTP_LINE.search(proc.log())
        assert match is not None
        proc.http = match.group(1)
        return proc

    def _wait(self, proc: Proc, ready: object, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log_tail()}")
            try:
                if ready():  # type: ignore[operator]
                    return
            except (requests.RequestException, FileNotFoundError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{proc.name} not ready after {timeout}s:\n{proc.log_tail()}")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        self.procs.clear()

    def wait_loop_caught_up(self, loop: str, timeout: float = 60.0) -> None:
        """Wait until the bridge's loop named `loop` (see consume/registry.py) has handled every record so far."""
        from kafka_bridge.consume.registry import loops

        spec = loops()[loop]
        group = self.env()["KAFKA_CONSUMER_GROUP"] + spec.group_suffix
        wait_group_caught_up(group, spec.topic.name, timeout, self.kafka_config())

    def query(self, sql: str, *params: object) -> list[tuple]:
        """Read the stack's database directly (to check what was stored)."""
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()


def message_count(stack: Stack, conversation_id: str) -> int:
    """How many messages the conversation holds in the database."""
    return stack.query("SELECT count(*) FROM messaging_message WHERE conversation_id = %s", conversation_id)[0][0]


@contextlib.contextmanager
def serving_stack(name: str, **extra_env: str) -> Iterator[Stack]:
    """Yield a new stack with its bridge and a web server running (`stack.base`: its address); stop it after."""
    stack = Stack.create(name, **extra_env)
    try:
        stack.start_bridge()
        _web, stack.base = stack.start_web()  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()
