"""Presence on the page, in Debian's Chromium against the real system: a dot and words that follow the other page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.integration


def test_the_dot_goes_off_and_on_as_the_other_persons_page_closes_and_opens(people):
    ann, ben, cat = people("ann").register(), people("ben").register(), people("cat").register()
    ann.start_chat(ben, cat, title="Trio")
    # A group shows no presence.
    expect(ann.page.locator("#pane-presence")).to_be_hidden()
    expect(ann.page.locator("#conversation-list button", has_text="Trio").locator(".presence-dot")).to_have_count(0)
    ann.start_chat(ben)
    # Ben's page is open: online, in the list and in the header, in words as well as colour.
    dot = ann.page.locator("#conversation-list .presence-dot")
    header = ann.page.locator("#pane-presence")
    expect(dot).to_have_count(1)
    expect(dot).to_have_attribute("data-online", "true")
    expect(dot).to_have_attribute("aria-label", "online")
    expect(header).to_have_text("online")
    # Ben closes his page: off a moment later, with when he was last seen.
    ben.close()
    expect(dot).to_have_attribute("data-online", "false")
    expect(dot).to_have_attribute("aria-label", "offline")
    expect(header).to_have_text("last seen just now")
    ann.screenshot("presence-offline")
    # Ben opens the page again: on again.
    ben.open()
    ben.login()
    expect(dot).to_have_attribute("data-online", "true")
    expect(header).to_have_text("online")
