"""ASGI application of the baseline server: `/ws/chat/` to the tutorial room consumer.

Run it with daphne and `DJANGO_SETTINGS_MODULE=benchmarks.baseline.settings`.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.baseline.settings")
django.setup()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from benchmarks.baseline.consumers import RoomConsumer  # noqa: E402

application = ProtocolTypeRouter({"websocket": URLRouter([path("ws/chat/", RoomConsumer.as_asgi())])})
