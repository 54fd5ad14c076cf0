"""The consumer loops of notifications, registered for `run_kafka_bridge`."""

from __future__ import annotations

from kafka_bridge.consume.registry import register_loop
from messaging.events import CHAT_MESSAGES

from .events import NOTIFICATIONS
from .handlers import notify_offline_recipients, store_and_push_notification

register_loop("notifications", NOTIFICATIONS, store_and_push_notification)
# Reads chat-messages again, in a consumer group of its own, so that
# notification work never holds up live delivery.
register_loop("offline-notifications", CHAT_MESSAGES, notify_offline_recipients, group_suffix="-offline-notifications")
