"""The consumer loops of the messaging topics, registered for `run_kafka_bridge`.

Each loop runs in its own consumer group; the batch handlers take several
records of one key in one call (one Redis pipeline for all of their frames),
and a record handled alone as a batch of one.
"""

from __future__ import annotations

from kafka_bridge.consume.registry import register_loop

from .events import CHAT_MESSAGES, MESSAGE_STATUS_EVENTS, TYPING_EVENTS
from .handlers import deliver_chat_messages, deliver_status_events, deliver_typing_events

register_loop("chat-messages", CHAT_MESSAGES, batch_handler=deliver_chat_messages)
register_loop("message-status-events", MESSAGE_STATUS_EVENTS, batch_handler=deliver_status_events)
register_loop("typing-events", TYPING_EVENTS, batch_handler=deliver_typing_events)
