"""The bridge process: the consumer loops of the four topics, plus an outbox relay.

`run_kafka_bridge` calls `run_bridge`; it wires topics to their handlers
and owns the signal handling: SIGTERM or SIGINT lets every loop finish the
record in hand, commit, and close, well within 10 seconds.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Producer
from django.conf import settings

from messaging.handlers import (
    deliver_chat_message,
    deliver_chat_messages,
    deliver_status_event,
    deliver_status_events,
    deliver_typing,
    deliver_typing_events,
    notify_offline_recipients,
)
from notifications.handlers import store_and_push_notification

from .clients import producer_config
from .loop import BatchHandler, Handler, TopicLoop
from .relay import process_relay
from .topics import CHAT_MESSAGES, MESSAGE_STATUS_EVENTS, NOTIFICATIONS, TYPING_EVENTS, Topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSpec:
    """One consumer loop of the bridge: a topic, its handler, and its consumer group."""

    topic: Topic
    handler: Handler
    # Appended to the consumer group; a loop with a purpose of its own gets a group of its own.
    group_suffix: str = ""
    # Handles several records of one key at once, where that saves round trips.
    batch_handler: BatchHandler | None = None


LOOPS: dict[str, LoopSpec] = {
    "chat-messages": LoopSpec(CHAT_MESSAGES, deliver_chat_message, batch_handler=deliver_chat_messages),
    "message-status-events": LoopSpec(MESSAGE_STATUS_EVENTS, deliver_status_event, batch_handler=deliver_status_events),
    "typing-events": LoopSpec(TYPING_EVENTS, deliver_typing, batch_handler=deliver_typing_events),
    "notifications": LoopSpec(NOTIFICATIONS, store_and_push_notification),
    # Reads chat-messages again, for offline recipients, so that notification
    # work never holds up live delivery.
    "offline-notifications": LoopSpec(CHAT_MESSAGES, notify_offline_recipients, "-offline-notifications"),
}


def describe_loops(loop_names: Iterable[str], group: str) -> str:
    """Name each loop once, with the topic it reads and its consumer group where they differ from its name."""
    parts = []
    for name in loop_names:
        spec = LOOPS[name]
        where = [] if spec.topic.name == name else [f"reads {spec.topic.name}"]
        if spec.group_suffix:
            where.append(f"group {group}{spec.group_suffix}")
        parts.append(f"{name} ({', '.join(where)})" if where else name)
    return f"{', '.join(parts)}; group {group}"


async def run_bridge(loop_names: Iterable[str], *, group_id: str | None = None, relay: bool = True) -> None:
    """Run the named loops until SIGTERM or SIGINT, then stop cleanly."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    if relay:
        process_relay().start()
    dead_letters = Producer(producer_config())
    group = group_id or settings.KAFKA_CONSUMER_GROUP
    names = list(dict.fromkeys(loop_names))
    loops = [
        TopicLoop(
            spec.topic,
            spec.handler,
            dead_letter_producer=dead_letters,
            group_id=group + spec.group_suffix,
            batch_handler=spec.batch_handler,
        )
        for spec in (LOOPS[name] for name in names)
    ]
    logger.info("Bridge running %d loops: %s", len(names), describe_loops(names, group))
    try:
        await asyncio.gather(*(t.run(stopping) for t in loops))
    finally:
        stopping.set()
        if relay:
            await asyncio.to_thread(process_relay().stop)
        await asyncio.to_thread(dead_letters.flush, 5)
        logger.info("Bridge stopped")
