"""ASGI entry point: HTTP to Django, `/ws/chat/` to the chat consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_project.settings")
django_asgi_app = get_asgi_application()

# Imported after Django is set up: they load models.
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from kafka_bridge.produce.clients import set_process_role  # noqa: E402
from kafka_bridge.produce.relay import process_relay  # noqa: E402
from messaging.consumers import ChatConsumer  # noqa: E402

from .ws_auth import websocket_stack  # noqa: E402

set_process_role("web")


class UnknownPath(AsyncWebsocketConsumer):
    """Any other WebSocket path: refused before the handshake completes (HTTP 403), never a 500."""

    async def connect(self) -> None:
        await self.close()


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": websocket_stack(
            URLRouter([path("ws/chat/", ChatConsumer.as_asgi()), re_path(r"", UnknownPath.as_asgi())])
        ),
    }
)

# Relay the outbox from this process too, so that records a crashed process
# left behind are sent even before the next message is.
if settings.OUTBOX_RELAY_AUTOSTART:
    process_relay().start()
