"""The page people keep open all day, in Debian's Chromium against the real system: unread counts that are
right, notifications that clear when read, the tab's title, errors in plain words, why a tab signed out, an
address per conversation that Back, Forward and a reload follow, people found by any part of their name,
faces and days in the history, and a phone layout that fits."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, Requests, until

pytestmark = pytest.mark.integration

ADDRESS = re.compile(r"/c/([0-9a-f-]{36})$")
# Dates as a British English browser in UTC writes them (the page formats with the browser's own Intl).
BRITISH = {"locale": "en-GB", "timezone_id": "UTC"}


def address_of(page) -> str:
    """The conversation id in the page's address."""
    match = ADDRESS.search(page.url)
    assert match, page.url
    return match.group(1)


def test_each_conversation_has_an_address_that_back_forward_and_reload_follow(people):
    ann, ben, cat = people("ann").register(), people("ben").register(), people("cat").register()
    ben.set_display_name("Ben Baker")
    page, base = ann.page, ann.base
    requests = Requests(ann.context, base)  # type: ignore[arg-type]
    # People are found by any part of their name: Ben by his surname, Cat by the middle of her username.
    search = page.get_by_label("Start a chat: find people")
    search.fill("Baker")
    page.locator("#search-results button", has_text="Ben Baker").click()
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator("#pane-title")).to_have_text("Ben Baker")
    with_ben = address_of(page)
    ann.send("Hi Ben")
    search.fill(cat.username[5:10])
    page.locator("#search-results button", has_text=cat.username).click()
    page.get_by_role("button", name="Start chat").click()
    expect(page.locator("#pane-title")).to_have_text(cat.username)
    with_cat = address_of(page)
    assert with_cat != with_ben
    # Back: the conversation before, then the list; Forward and a reload come back to it.
    page.go_back()
    expect(page).to_have_url(f"{base}/c/{with_ben}")
    expect(page.locator("#pane-title")).to_have_text("Ben Baker")
    expect(ann.bubble("Hi Ben")).to_have_count(1)
    page.go_back()
    expect(page).to_have_url(f"{base}/")
    expect(page.locator("#pane-title")).to_have_text("Pick a conversation")
    expect(page.locator("#messages .message")).to_have_count(0)
    page.go_forward()
    expect(page.locator("#pane-title")).to_have_text("Ben Baker")
    page.reload()
    expect(page.locator("#pane-title")).to_have_text("Ben Baker")
    expect(ann.bubble("Hi Ben")).to_have_count(1)
    ann.screenshot("address-reloaded")
    assert not requests.elsewhere(), f"the chat page asked another origin for {requests.elsewhere()}"
    # A conversation's address opened signed out: the page signs in, then opens it.
    ben.close()
    ben.open(f"/c/{with_ben}").wait_for_selector("#auth-form")
    ben.login()
    expect(ben.page.locator("#pane-title")).to_have_text(ann.username)
    expect(ben.bubble("Hi Ben")).to_have_count(1)
    # Someone else's conversation, one that does not exist, and an address that is no conversation id: the
    # page answers, and says so.
    for path in (f"/c/{with_cat}", f"/c/{uuid.uuid4()}", "/c/%3Cb%3Enot%20an%20id%3C%2Fb%3E"):
        response = ben.page.goto(base + path)
        assert response is not None and response.status == 200, path
        expect(ben.page.locator("#pane-title")).to_have_text("Conversation not found")
        expect(ben.page.locator("#pane-note")).to_contain_text("or you are not in it")
        expect(ben.page.locator("#composer")).to_be_hidden()
        expect(ben.page.locator("#conversation-list button", has_text=ann.username)).to_be_visible()
    ben.screenshot("conversation-not-found")
    # From there, his own conversation opens as usual.
    ben.open_chat(ann.username)
    expect(ben.page).to_have_url(f"{base}/c/{with_ben}")


def test_avatars_and_days_show_who_wrote_and_when(people, web_stack):
    ann, ben = people("ann", **BRITISH).register(), people("ben", **BRITISH).register()
    ben.set_display_name("Ben Baker")
    ann.start_chat(ben)
    conversation_id = address_of(ann.page)
    for text in ("Three days ago", "Yesterday's", "This morning's"):
        ann.send(text)
    expect(ann.bubble("This morning's").locator(".tick")).to_have_attribute("data-status", re.compile("SENT|DELIVERED"))
    ben.open_chat(ann.username)
    ben.send("First of Ben's")
    ben.send("Second of Ben's")
    expect(ann.bubble("Second of Ben's")).to_have_count(1)
    # The first two were written days ago (as far as the history says).
    for text, days in (("Three days ago", 3), ("Yesterday's", 1)):
        web_stack.query(
            "UPDATE messaging_message SET created_at = created_at - make_interval(days => %s)"
            " WHERE conversation_id = %s AND content = %s RETURNING id",
            days,
            conversation_id,
            text,
        )
    ann.page.reload()
    expect(ann.bubble("Second of Ben's")).to_have_count(1)
    separators = ann.page.locator("#messages .day-separator")
    expect(separators).to_have_count(3)
    # "Thu, 3 Dec 2026": the weekday and the date, as the browser's language writes them.
    expect(separators.nth(0)).to_have_text(re.compile(r"^[A-Z][a-z]{2},? \d{1,2} [A-Z][a-z]{2} \d{4}$"))
    expect(separators.nth(1)).to_have_text("Yesterday")
    expect(separators.nth(2)).to_have_text("Today")
    times = ann.page.locator("#messages .message time")
    expect(times.nth(0)).to_have_text(re.compile(r"^[A-Z][a-z]{2} \d{1,2}:\d\d$"))  # within a week: the weekday
    expect(times.nth(1)).to_have_text(re.compile(r"^Yesterday \d{1,2}:\d\d$"))
    expect(times.nth(2)).to_have_text(re.compile(r"^\d{1,2}:\d\d$"))
    # Ben's face: the same initials and colour in the list, the header and beside his run of two messages.
    faces = [
        ann.page.locator("#conversation-list button", has_text="Ben Baker").locator(".avatar"),
        ann.page.locator("#pane-avatar .avatar"),
        ann.bubble("First of Ben's").locator(".avatar"),
    ]
    colour = faces[0].get_attribute("data-colour")
    for face in faces:
        expect(face).to_have_text("BB")
        expect(face).to_have_attribute("aria-hidden", "true")
        expect(face).to_have_attribute("data-colour", colour)
    expect(ann.bubble("Second of Ben's").locator(".avatar")).to_have_count(0)  # the run goes on
    expect(ann.page.locator("#messages .message.mine .avatar")).to_have_count(0)  # none on her own
    # Ben sees Ann's initials from her username, in her own colour.
    ben_face = ben.page.locator("#pane-avatar .avatar")
    suffix = ann.username.split("-")[1]  # a word that starts with a digit gives no initial
    expect(ben_face).to_have_text("A" + (suffix[0].upper() if suffix[0].isalpha() else ""))
    ann.screenshot("avatars-and-days")


def box(locator) -> dict:
    found = locator.bounding_box()
    assert found, f"{locator} is not on the screen"
    return found


def test_the_page_fits_a_phone(people):
    ann, ben = people("ann", mobile=True).register(), people("ben").register()
    page = ann.page
    ann.set_display_name("Annabel Archer-Fitzgerald")  # a long name: it gives way, the buttons keep their row
    bar = box(page.locator(".topbar"))
    buttons = [box(button) for button in page.locator(".topbar button").all() if button.is_visible()]
    assert len(buttons) >= 3, buttons  # notifications, profile, log out
    for button in buttons:
        assert abs(button["y"] - buttons[0]["y"]) < 2, buttons  # one row
        assert button["x"] + button["width"] <= PHONE["width"], buttons
    assert bar["height"] < 56, bar
    # The name box is about a name long, with its button beside it.
    page.get_by_role("button", name="Profile").click()
    name_box = box(page.get_by_label("Display name (what others see)"))
    save = box(page.get_by_role("button", name="Save"))
    assert name_box["width"] < 0.8 * PHONE["width"], name_box
    assert abs(save["y"] - name_box["y"]) < name_box["height"], (name_box, save)
    page.get_by_role("button", name="Profile").click()
    # A conversation fills the screen; the page's Back returns to the list, whose first entry follows the
    # "Start chat" button closely.
    ann.start_chat(ben)
    expect(page.locator("#sidebar")).to_be_hidden()
    page.get_by_role("button", name="Back to conversations").click()
    expect(page).to_have_url(f"{ann.base}/")
    start = box(page.get_by_role("button", name="Start chat"))
    first = box(page.locator("#conversation-list li").first)
    assert 0 <= first["y"] - (start["y"] + start["height"]) < 24, (start, first)
    ann.screenshot("phone-list")


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
