"""Construction of confluent-kafka clients from the settings, in one place."""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient
from django.conf import settings

from core.logs import process_role
from core.logs import set_process_role as set_process_role  # the entry points name their role here

from ..metrics import producer_error
from ..payloads import Payload
from ..topics import Topic
from .origin import OWN_HEADERS

logger = logging.getLogger(__name__)
# librdkafka's own lines (connection failures and the like), through logging like every other line.
librdkafka_logger = logging.getLogger("kafka.librdkafka")


def client_id(purpose: str) -> str:
    """Return a `client.id` naming this process's role and the client's purpose, e.g. chat-bridge-chat-messages.

    The role is the one its log lines carry (core.logs.set_process_role).

    Kafka's own tools (ConsumerGroupCommand, broker logs, quotas) show it, so
    an operator can tell the loops and processes apart.
    """
    return f"chat-{process_role()}-{purpose}"


def base_config() -> dict[str, Any]:
    """Return the settings every client shares: brokers, security, and a client id naming the role."""
    return {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "client.id": f"chat-{process_role()}",
        # Served with the client's poll, so they carry the role and the log format.
        "logger": librdkafka_logger,
        # librdkafka backs off up to 10 s between reconnects by default; a chat
        # should notice a returning broker within a second.
        "reconnect.backoff.max.ms": 1000,
        **settings.KAFKA_SECURITY,
    }


def producer_config() -> dict[str, Any]:
    """Return the producer settings: acknowledged by the in-sync replicas, idempotent (no duplicates, in order)."""
    return {
        **base_config(),
        # A record counts as sent once min.insync.replicas brokers hold it, not only the leader.
        "acks": "all",
        "enable.idempotence": True,  # needs acks=all; retries in order, never twice
        "linger.ms": 2,
        "compression.type": "lz4",
        # Give up on a record after this long; the outbox keeps it and retries.
        "message.timeout.ms": 10_000,
    }


def relay_producer_config() -> dict[str, Any]:
    """Return the outbox relay's producer settings: it never gives up on a record while its process lives.

    Giving up would let later records of the same partition overtake the one
    given up on; the outbox row keeps the record if the process dies instead.
    The queue is bounded: past it, records wait in the outbox (see relay.py and sweep.py).
    """
    return {
        **producer_config(),
        "message.timeout.ms": 0,  # infinite
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 64 * 1024,
    }


def consumer_config(group_id: str | None = None) -> dict[str, Any]:
    """Return the consumer settings: offsets are committed by hand after processing."""
    return {
        **base_config(),
        "group.id": group_id or settings.KAFKA_CONSUMER_GROUP,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "session.timeout.ms": 6_000,  # the broker's minimum: a dead bridge's partitions move on soonest
        "heartbeat.interval.ms": 1_000,
    }


def admin_client(name: str = "chat-admin") -> AdminClient:
    """Return an AdminClient for topic management and health checks."""
    return AdminClient({**base_config(), "client.id": name})


_producer: Producer | None = None
_producer_lock = threading.Lock()


def shared_producer() -> Producer:
    """Return this process's producer, created on first use (it is thread-safe)."""
    global _producer
    if _producer is None:
        with _producer_lock:
            if _producer is None:
                _producer = Producer(
                    {**producer_config(), "client.id": client_id("producer"), "error_cb": _log_client_error}
                )
    return _producer


def relay_producer() -> Producer:
    """Return a new producer for the outbox relay."""
    return Producer({**relay_producer_config(), "client.id": client_id("relay"), "error_cb": _log_client_error})


def _log_ephemeral_delivery(err: KafkaError | None, msg: Message) -> None:
    if err is not None:
        producer_error()
        logger.warning("Dropped an ephemeral %s record: %s", msg.topic(), err)
    else:
        logger.debug("Ephemeral record at %s[%s]@%s", msg.topic(), msg.partition(), msg.offset())


def _log_client_error(error: Any) -> None:
    # librdkafka reports broker outages here; it reconnects by itself.
    logger.warning("Kafka client error: %s", error)


def publish_ephemeral(topic: Topic, payload: Payload) -> None:
    """Produce a record that may be lost (typing): no outbox, no waiting."""
    producer = shared_producer()
    try:
        producer.produce(
            topic.name,
            key=topic.key(payload).encode(),
            value=payload.encode(),
            headers=OWN_HEADERS,
            on_delivery=_log_ephemeral_delivery,
        )
    except BufferError:
        logger.warning("Producer queue full; dropped an ephemeral %s record", topic.name)
    producer.poll(0)
