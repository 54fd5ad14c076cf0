"""Where the apps declare their topics and loops, and the bridge finds them.

A loop is one topic read by one handler in one consumer group (driver.py
runs it). This package knows no app. Each app declares its topics next to
their payloads (`register_topic`, in its `events.py`) and its loops in a
module named `kafka` (`register_loop`), the way the admin finds `admin.py`:
`discover` imports the `kafka` module of every installed app, in the order
of INSTALLED_APPS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from django.utils.module_loading import autodiscover_modules

from ..payloads import Payload
from ..topics import Topic
from .records import BatchHandler, Handler, one_by_one

P = TypeVar("P", bound=Payload)

_topics: dict[str, Topic[Any]] = {}
_loops: dict[str, LoopSpec] = {}
_discovered = False


@dataclass(frozen=True)
class LoopSpec:
    """One loop of the bridge: a topic, its handlers, and its consumer group."""

    name: str
    topic: Topic[Any]
    handler: Handler[Any]
    # Appended to the consumer group; a loop with a purpose of its own gets a group of its own.
    group_suffix: str = ""
    # Handles several records of one key at once, where that saves round trips.
    batch_handler: BatchHandler[Any] | None = None


def register_topic(topic: Topic[P]) -> Topic[P]:
    """Declare a topic of the system (kafka_topics creates it, with its dead-letter topic); return it."""
    _topics[topic.name] = topic
    return topic


def register_loop(
    name: str,
    topic: Topic[P],
    handler: Handler[P] | None = None,
    *,
    group_suffix: str = "",
    batch_handler: BatchHandler[P] | None = None,
) -> None:
    """Declare a loop that `run_kafka_bridge` runs (under `name`, unique), with a handler or a batch handler.

    With only a batch handler, a record handled alone (after its batch
    failed, or for its retries) goes to it as a batch of one.
    """
    if name in _loops and _loops[name].topic is not topic:
        raise ValueError(f"Two consumer loops are called {name!r}")
    if handler is None:
        if batch_handler is None:
            raise ValueError(f"The loop {name!r} needs a handler or a batch handler")
        handler = one_by_one(batch_handler)
    _loops[name] = LoopSpec(name, topic, handler, group_suffix, batch_handler)


def discover() -> None:
    """Import every installed app's `kafka` module, once."""
    global _discovered
    if not _discovered:
        autodiscover_modules("kafka")
        _discovered = True


def topics() -> tuple[Topic[Any], ...]:
    """Return every registered topic, in the order declared."""
    discover()
    return tuple(_topics.values())


def topic_named(name: str) -> Topic[Any]:
    """Return the registered topic with this name, or raise KeyError."""
    discover()
    return _topics[name]


def loops() -> dict[str, LoopSpec]:
    """Return every registered loop by name, in the order declared."""
    discover()
    return dict(_loops)
