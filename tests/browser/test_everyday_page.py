"""The page people keep open all day, in Debian's Chromium against the real system: unread counts that are
right, notifications that clear when read, the tab's title, errors in plain words, and why a tab signed out."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import until

pytestmark = pytest.mark.integration


def test_a_new_conversations_first_message_counts_once_and_the_tab_title_shows_the_total(people):
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
    expect(ben.page).to_have_title("(2) Chat")
    ben.open_chat(ann.username)
    expect(item.locator(".badge")).to_have_count(0)
    expect(ben.page).to_have_title("Chat")


def test_a_notification_opens_its_conversation_and_clears_in_every_tab_until_the_session_ends(people, web_stack):
    ann, ben = people("ann").register(), people("ben").register()
    ann.set_display_name("Ann Archer")
    ann.start_chat(ben)
    ben.close()  # away: Ann's messages reach him as a notification
    ann.send("Are you free tonight?")
    ann.send("Call me")
    title = "2 new messages from Ann Archer"  # named as the page names her

    def notified() -> bool:
        sql = (
            "SELECT count(*) FROM notifications_notification n JOIN auth_user u ON u.id = n.user_id"
            " WHERE u.username = %s AND n.title = %s AND NOT n.read"
        )
        return web_stack.query(sql, ben.username, title) == [(1,)]

    until(ann.page, notified)
    ben.open()
    ben.login()
    assert ben.context is not None
    tab = ben.context.new_page()  # a second tab of Ben's
    tab.goto(ben.base + "/")
    expect(tab.locator("body")).to_have_attribute("data-online", "true")
    page = ben.page
    bell = page.locator("#bell-button")
    expect(bell).to_have_accessible_name("Notifications, 1 unread")
    assert bell.locator("svg").count() == 1  # a drawn bell, not an emoji
    # The panel is an overlay: the conversation pane stays where it was.
    pane = page.locator("#pane").bounding_box()
    bell.click()
    panel = page.locator("#notifications-panel")
    notice = panel.locator("li[data-type=NEW_MESSAGE]")
    expect(notice).to_contain_text(title)
    expect(notice.get_by_role("button", name=f"Open: {title}")).to_be_focused()
    assert page.locator("#pane").bounding_box() == pane
    expect(panel.get_by_role("button", name="Mark all read")).to_be_visible()
    ben.screenshot("notification-overlay")
    page.keyboard.press("Escape")  # closes it, back on the bell
    expect(panel).to_be_hidden()
    expect(bell).to_be_focused()
    tab.locator("#bell-button").click()
    expect(tab.locator("#notification-list li")).to_have_count(1)
    # Opening it opens the conversation, which reads it: both tabs clear it.
    bell.click()
    notice.get_by_role("button", name=f"Open: {title}").click()
    expect(panel).to_be_hidden()
    expect(page.locator("#pane-title")).to_have_text("Ann Archer")
    expect(page.locator("#messages .message")).to_have_count(2)
    expect(page.locator("#bell-count")).to_be_hidden()
    expect(bell).to_have_accessible_name("Notifications")
    expect(tab.locator("#notification-list li")).to_have_count(0)
    expect(tab.locator("#bell-count")).to_be_hidden()
    expect(tab.locator("#notifications-empty")).to_have_text("No new notifications.")
    expect(tab.get_by_role("button", name="Mark all read")).to_be_hidden()
    # The server ends Ben's session (not a logout): his next visit says so.
    (session,) = [c["value"] for c in ben.context.cookies() if c["name"] == "sessionid"]
    assert web_stack.query("DELETE FROM django_session WHERE session_key = %s RETURNING 1", session) == [(1,)]
    tab.reload()
    expect(tab.locator("#auth-notice")).to_have_text("Your session ended; sign in again.")


def test_plain_words_for_a_refused_registration_and_for_a_tab_signed_out_elsewhere(people):
    ann = people("ann")
    ann.page.get_by_label("Username").fill(ann.username)
    ann.page.get_by_label("Password").fill("k7#Qz")
    ann.page.get_by_role("button", name="Register").click()
    expect(ann.page.locator("#auth-error")).to_have_text(
        "This password is too short. It must contain at least 8 characters."
    )
    ann.register()  # a good password: in
    assert ann.context is not None
    tab = ann.context.new_page()
    tab.goto(ann.base + "/")
    expect(tab.locator("body")).to_have_attribute("data-online", "true")
    ann.page.get_by_role("button", name="Log out").click()
    expect(tab.locator("#auth-notice")).to_have_text("You were signed out in another tab.")
    expect(tab.get_by_role("button", name="Log in")).to_be_visible()
    # The tab that logged out needs no reason.
    expect(ann.page.locator("body")).to_have_attribute("data-view", "auth")
    expect(ann.page.locator("#auth-notice")).to_be_hidden()
    ann.screenshot("signed-out")
