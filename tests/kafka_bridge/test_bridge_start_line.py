"""The bridge's start line names each loop it runs once, the offline-notifications loop included."""

import re

from kafka_bridge.consume.bridge import describe_loops
from kafka_bridge.consume.registry import loops


def loop_names_in(line: str) -> list[str]:
    """Return the loop names of a start line, without their (topic, group) remarks."""
    return re.sub(r" \([^)]*\)", "", line.rsplit("; ", 1)[0]).split(", ")


def test_the_start_line_names_every_loop_once():
    line = describe_loops(loops().values(), "group-x")
    assert loop_names_in(line) == list(loops())
    assert "offline-notifications (reads chat-messages, group group-x-offline-notifications)" in line
    assert line.endswith("; group group-x")


def test_a_bridge_of_some_loops_names_only_those():
    assert describe_loops([loops()["typing-events"]], "g") == "typing-events; group g"
