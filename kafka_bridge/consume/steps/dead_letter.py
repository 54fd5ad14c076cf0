"""Park a record that cannot be processed in `<topic>.DLT`, with the error and its origin in its headers."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from ... import metrics
from ...payloads import Payload
from ..records import (
    H_ERROR,
    H_ERROR_TYPE,
    H_FAILED_AT,
    H_OFFSET,
    H_PARTITION,
    H_TOPIC,
    LOGGER_NAME,
    headers_of,
    log_fields,
    position,
)

logger = logging.getLogger(LOGGER_NAME)

DEAD_LETTER_FLUSH_SECONDS = 30.0

# Runs a blocking call on the loop's poll thread and returns its result.
RunOnThread = Callable[..., Awaitable[Any]]


class DeadLetter:
    """Copy records to a dead-letter topic and wait until the broker has each; raise when it does not."""

    def __init__(
        self, producer: Producer, topic: str, run: RunOnThread, wall_clock: Callable[[], float] = time.time
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.run = run
        self.wall_clock = wall_clock

    async def submit(self, msg: Message, exc: BaseException, payload: Payload | None = None) -> None:
        """Park one record, with why it failed; the payload, when known, names its message in the log."""
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        logger.error(
            "Dead-lettering %s@%s/%s: %s",
            msg.topic(),
            msg.partition(),
            msg.offset(),
            error,
            extra=log_fields(msg, payload),
        )
        topic, partition, offset = position(msg)
        headers: list[tuple[str, str | bytes | None]] = [
            *headers_of(msg),
            (H_ERROR, error[:4000].encode()),
            (H_ERROR_TYPE, type(exc).__name__.encode()),
            (H_TOPIC, topic.encode()),
            (H_PARTITION, str(partition).encode()),
            (H_OFFSET, str(offset).encode()),
            (H_FAILED_AT, str(int(self.wall_clock() * 1000)).encode()),
        ]
        outcome: list[KafkaError | None] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            outcome.append(err)
            if err is not None:
                metrics.producer_error()

        def produce_and_flush() -> None:
            self.producer.produce(self.topic, key=msg.key(), value=msg.value(), headers=headers, on_delivery=delivered)
            self.producer.flush(DEAD_LETTER_FLUSH_SECONDS)

        await self.run(produce_and_flush)
        if not outcome or outcome[0] is not None:
            # Not safe to commit past a record that is neither handled nor parked.
            raise RuntimeError(f"could not dead-letter {msg.topic()}@{msg.partition()}/{msg.offset()}")
