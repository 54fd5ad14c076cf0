"""The Prometheus metrics of messaging: sends, their acknowledgement time, open sockets.

Every metric of this app is defined here, once; the code that counts only
increments or observes (no lock of ours, no round trip). The web processes
serve them on `/metrics` (chat_project/metrics.py), summed over processes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_SENT = Counter(
    "chat_messages_sent",
    "Messages stored (over WebSocket or REST); a repeated clientMessageId is not counted again.",
)
SEND_ACK_SECONDS = Histogram(
    "chat_send_ack_seconds",
    "Seconds from a message.send frame's arrival to its message.ack (stored and committed).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
REDELIVERED = Counter(
    "chat_redelivered_messages",
    "message.new frames sent again by redelivery to sockets whose delivered watermark stood still.",
)
REPEATS_HELD_BACK = Counter(
    "chat_repeats_held_back",
    "message.new frames not written to a socket that had been sent that message already.",
)
WS_CONNECTIONS = Gauge(
    "chat_ws_connections",
    "Open WebSocket connections (accepted, not yet closed).",
    # Summed over the live web processes; a dead process's sockets are gone with it.
    multiprocess_mode="livesum",
)
