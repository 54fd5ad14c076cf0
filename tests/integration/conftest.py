"""Fixtures and helpers of the integration tests that several files share."""

import pytest

from tests.support.client import conversation


@pytest.fixture
async def pair(make_user):
    """Alice and Bob in a direct conversation, and Alice's open socket."""
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    socket = await alice.ws()
    yield alice, bob, direct, socket
    await socket.close()
