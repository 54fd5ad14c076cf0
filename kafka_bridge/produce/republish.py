"""Producing records again from what the database holds, for consumers that lost them.

A one-off command builds the payloads from stored rows and hands them here;
they go straight to the broker with a producer of their own, not through the
outbox. The outbox ties a record to the commit of the change it announces;
a record produced again announces no change, so there is nothing to tie it
to, and writing every one of them into the database first would load the
source of truth while it is being recovered, and leave the records to the
relays of the running servers. Going straight, the command knows when the
broker has taken every record and says so, or fails; running it again is
harmless, since every record carries the id the first one did.

Each record carries the `republished` header (origin.py), so this
service's own loops do not take it for news.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, Message, Producer

from ..payloads import Payload
from ..topics import Topic
from .clients import client_id, producer_config
from .origin import REPUBLISHED_HEADERS

# How long producing waits for room in a full producer queue, each time.
QUEUE_FULL_POLL_SECONDS = 0.5
# The producer gives up on a record after message.timeout.ms (clients.producer_config); this is ample beyond it.
FLUSH_SECONDS = 60.0


class RepublishFailed(Exception):
    """The broker did not take every record; producing them all again is safe."""


def republish(topic: Topic, payloads: Iterable[Payload]) -> int:
    """Produce the payloads again to `topic`, in order, marked as republished; return how many the broker took.

    Waits until the broker acknowledged every record; raise RepublishFailed when any was not.
    """
    producer = Producer({**producer_config(), "client.id": client_id("republish")})
    failures: list[KafkaError] = []
    acknowledged = 0

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        nonlocal acknowledged
        if err is None:
            acknowledged += 1
        else:
            failures.append(err)

    produced = 0
    for payload in payloads:
        while True:
            try:
                producer.produce(
                    topic.name,
                    key=topic.key(payload).encode(),
                    value=payload.encode(),
                    headers=REPUBLISHED_HEADERS,
                    on_delivery=delivered,
                )
                break
            except BufferError:  # the queue is full: let the broker take some first
                producer.poll(QUEUE_FULL_POLL_SECONDS)
        produced += 1
        producer.poll(0)
    left = producer.flush(FLUSH_SECONDS)
    if failures or left:
        reason = str(failures[0]) if failures else f"{left} still unacknowledged after {FLUSH_SECONDS:g}s"
        raise RepublishFailed(
            f"the broker took {acknowledged} of {produced} record(s) for {topic.name} ({reason}); "
            "nothing is lost by running it again"
        )
    return acknowledged
