"""Run a record's handler, again with exponential backoff while it fails, as the loop's policy says."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Generic

from confluent_kafka import Message

from ...payloads import Unprocessable
from ..records import LOGGER_NAME, Handler, P, RecordInfo, log_fields
from .counting import Counts

logger = logging.getLogger(LOGGER_NAME)


@dataclass
class RetryPolicy:
    """Exponential backoff between handler attempts, then the dead-letter topic."""

    attempts: int = 5
    first_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.first_delay * 2 ** (attempt - 1), self.max_delay)


class Stopping(Exception):
    """Raised inside a retry wait when the bridge is asked to stop."""


class Retry(Generic[P]):
    """Run the handler until it succeeds; raise its last error once the policy gives up.

    `Unprocessable` is raised at once: retrying cannot help, the reason is in
    the record itself. A wait between attempts ends early, with `Stopping`,
    when the bridge is asked to stop.
    """

    def __init__(self, handler: Handler[P], policy: RetryPolicy, counts: Counts) -> None:
        self.handler = handler
        self.policy = policy
        self.counts = counts

    async def submit(self, payload: P, info: RecordInfo, msg: Message, stopping: asyncio.Event) -> None:
        """Handle one decoded record."""
        attempt = 1
        while True:
            try:
                await self.handler(payload, info)
                return
            except Unprocessable:
                raise
            except Exception as exc:
                if attempt >= self.policy.attempts:
                    raise
                delay = self.policy.delay(attempt)
                logger.warning(
                    "Handler for %s@%s/%s failed (attempt %d): %s; retrying in %.1fs",
                    info.topic,
                    info.partition,
                    info.offset,
                    attempt,
                    exc,
                    delay,
                    extra=log_fields(msg, payload),
                )
                self.counts.retried()
                attempt += 1
                try:
                    await asyncio.wait_for(stopping.wait(), delay)
                    raise Stopping
                except TimeoutError:
                    pass
