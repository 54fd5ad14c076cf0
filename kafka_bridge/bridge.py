"""The bridge process: one consumer loop per topic, plus an outbox relay.

`run_kafka_bridge` calls `run_bridge`; it wires topics to their handlers
and owns the signal handling: SIGTERM or SIGINT lets every loop finish the
record in hand, commit, and close, well within 10 seconds.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable

from confluent_kafka import Producer

from messaging.handlers import deliver_chat_message, deliver_status_event, deliver_typing
from notifications.handlers import store_and_push_notification

from .clients import producer_config
from .loop import Handler, TopicLoop
from .relay import process_relay
from .topics import CHAT_MESSAGES, MESSAGE_STATUS_EVENTS, NOTIFICATIONS, TYPING_EVENTS, Topic

logger = logging.getLogger(__name__)

HANDLERS: dict[str, tuple[Topic, Handler]] = {
    CHAT_MESSAGES.name: (CHAT_MESSAGES, deliver_chat_message),
    MESSAGE_STATUS_EVENTS.name: (MESSAGE_STATUS_EVENTS, deliver_status_event),
    TYPING_EVENTS.name: (TYPING_EVENTS, deliver_typing),
    NOTIFICATIONS.name: (NOTIFICATIONS, store_and_push_notification),
}


async def run_bridge(topic_names: Iterable[str], *, group_id: str | None = None, relay: bool = True) -> None:
    """Consume the named topics until SIGTERM or SIGINT, then stop cleanly."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)

    if relay:
        process_relay().start()
    dead_letters = Producer(producer_config())
    loops = [
        TopicLoop(topic, handler, dead_letter_producer=dead_letters, group_id=group_id)
        for topic, handler in (HANDLERS[name] for name in topic_names)
    ]
    logger.info("Bridge running: %s", ", ".join(t.topic.name for t in loops))
    try:
        await asyncio.gather(*(t.run(stopping) for t in loops))
    finally:
        stopping.set()
        if relay:
            await asyncio.to_thread(process_relay().stop)
        await asyncio.to_thread(dead_letters.flush, 5)
        logger.info("Bridge stopped")
