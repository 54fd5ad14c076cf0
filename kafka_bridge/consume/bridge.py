"""The bridge process: the loops the apps registered, plus an outbox relay.

`run_kafka_bridge` calls `run_bridge`. The apps declare their loops (each
app's `kafka.py`, see registry.py), each run by a driver (driver.py); this
module owns the signal handling: SIGTERM or SIGINT lets every loop finish
the record in hand, commit, and close, well within 10 seconds.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable

from confluent_kafka import Producer
from django.conf import settings

from ..metrics import start_counting
from ..produce.clients import client_id, producer_config, set_process_role
from ..produce.relay import process_relay
from .driver import LoopDriver
from .probes import BridgeHttp
from .registry import LoopSpec
from .registry import loops as registered_loops

logger = logging.getLogger(__name__)


def describe_loops(specs: Iterable[LoopSpec], group: str) -> str:
    """Name each loop once, with the topic it reads and its consumer group where they differ from its name."""
    parts = []
    for spec in specs:
        where = [] if spec.topic.name == spec.name else [f"reads {spec.topic.name}"]
        if spec.group_suffix:
            where.append(f"group {group}{spec.group_suffix}")
        parts.append(f"{spec.name} ({', '.join(where)})" if where else spec.name)
    return f"{', '.join(parts)}; group {group}"


async def run_bridge(loop_names: Iterable[str], *, group_id: str | None = None, relay: bool = True) -> None:
    """Run the named loops until SIGTERM or SIGINT, then stop cleanly."""
    stopping = asyncio.Event()
    event_loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        event_loop.add_signal_handler(sig, stopping.set)

    set_process_role("bridge")
    dead_letters = Producer({**producer_config(), "client.id": client_id("dead-letters")})
    group = group_id or settings.KAFKA_CONSUMER_GROUP
    specs = [registered_loops()[name] for name in dict.fromkeys(loop_names)]
    drivers = [
        LoopDriver(
            spec.topic,
            spec.handler,
            dead_letter_producer=dead_letters,
            group_id=group + spec.group_suffix,
            batch_handler=spec.batch_handler,
            name=spec.name,
        )
        for spec in specs
    ]
    for spec in specs:
        start_counting(spec.name, spec.topic.name)
    logger.info("Bridge running %d loops: %s", len(specs), describe_loops(specs, group))
    http = BridgeHttp(drivers, max_poll_gap=settings.BRIDGE_READY_POLL_SECONDS)
    host, port = await http.start(settings.BRIDGE_HTTP_HOST, settings.BRIDGE_HTTP_PORT)
    logger.info("Bridge HTTP endpoint on http://%s:%d (/metrics, /healthz, /readyz)", host, port)
    if relay:
        process_relay().start()
    try:
        await asyncio.gather(*(driver.run(stopping) for driver in drivers))
    finally:
        stopping.set()
        await http.close()
        if relay:
            await asyncio.to_thread(process_relay().stop)
        await asyncio.to_thread(dead_letters.flush, 5)
        logger.info("Bridge stopped")
