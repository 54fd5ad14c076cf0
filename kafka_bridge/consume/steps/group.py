"""Split a polled batch by partition and key, and run the keys side by side, each in order."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Message

from ..records import LOGGER_NAME, Position, log_fields, position
from .handle import ProcessRecord, RunTogether
from .retry import Stopping

logger = logging.getLogger(LOGGER_NAME)


@dataclass
class Progress:
    """What became of a polled batch: its records in order, those finished, and whether one could not be."""

    pending: list[Message]
    finished: set[Position] = field(default_factory=set)
    failed: bool = False


class GroupByKey:
    """Handle a polled batch: each key's records in order, different keys concurrently.

    Records of one key (in one partition) keep their order; one slow key or
    round trip does not hold up the others. A key whose records are not all
    finished stops at the first one: it and the rest come again.
    """

    def __init__(self, topic: str, process: ProcessRecord[Any], together: RunTogether[Any] | None) -> None:
        self.topic = topic
        self.process = process
        self.together = together

    async def submit(self, messages: list[Message], stopping: asyncio.Event) -> Progress:
        """Handle what can be handled; return the progress for the commit step."""
        for msg in messages:
            if msg.error():
                logger.warning("Consumer error on %s: %s", self.topic, msg.error(), extra={"topic": self.topic})
        progress = Progress([m for m in messages if not m.error()])
        chains: dict[tuple[int, str | bytes | None], list[Message]] = {}
        for msg in progress.pending:
            chains.setdefault((position(msg)[1], msg.key()), []).append(msg)
        await asyncio.gather(*(self._chain(chain, progress, stopping) for chain in chains.values()))
        return progress

    async def _chain(self, chain: list[Message], progress: Progress, stopping: asyncio.Event) -> None:
        if len(chain) > 1 and self.together is not None and await self.together.submit(chain):
            progress.finished.update(position(msg) for msg in chain)
            return
        for msg in chain:
            if stopping.is_set() or progress.failed:
                return  # the rest is redelivered to whoever consumes next
            try:
                await self.process.submit(msg, stopping)
            except Stopping:
                return
            except Exception:
                # Neither handled nor parked (the broker refused the dead letter).
                logger.exception(
                    "Could not finish %s@%s/%s", msg.topic(), msg.partition(), msg.offset(), extra=log_fields(msg)
                )
                progress.failed = True
                return
            progress.finished.add(position(msg))
