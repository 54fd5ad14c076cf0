"""The page people keep open all day, in Debian's Chromium against the real system."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.integration


def test_a_new_conversations_first_message_counts_once(people):
    ann, ben = people("ann").register(), people("ben").register()
    ann.start_chat(ben)
    ann.send("Hello")
    # Ben's page learns of the conversation from its first message.
    item = ben.page.locator("#conversation-list button", has_text=ann.username)
    expect(item.locator(".conversation-preview")).to_have_text(f"{ann.username}: Hello")
    expect(item.locator(".badge")).to_have_text("1")
    ann.send("Are you there?")
    expect(item.locator(".conversation-preview")).to_have_text(f"{ann.username}: Are you there?")
    expect(item.locator(".badge")).to_have_text("2")
    ben.open_chat(ann.username)
    expect(item.locator(".badge")).to_have_count(0)
