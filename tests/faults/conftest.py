"""Fault scenarios: each gets a system of its own (database, web, bridge) on the shared broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack

FIGURES: list[tuple[str, dict]] = []

# Senders in these scenarios are load generators, not abusers.
UNLIMITED = {"CHAT_SEND_BURST": "1000000", "CHAT_SEND_RATE_PER_SECOND": "1000000"}


@pytest.fixture
def fault_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    # Short: the broker here refuses to set offsets for one longer group name
    # ("...-fault_bridge_stops_cleanly_on_sigterm", UNKNOWN_MEMBER_ID) for reasons not found.
    name = request.node.name.removeprefix("test_")[:30]
    stack = Stack.create(f"fault_{name}", **UNLIMITED)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def report(request: pytest.FixtureRequest):
    """Record a scenario's figures; they are printed at the end of the run."""

    def record(figures: dict) -> None:
        FIGURES.append((request.node.name, figures))

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault scenarios")
    for name, figures in FIGURES:
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
