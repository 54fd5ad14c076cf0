"""The web client in Debian's Chromium, against the real system (daphne, the
bridge, Kafka, PostgreSQL, Redis): what two or three people see on their pages."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LIVE_MS, PASSWORD, SCREENSHOT_DIR, Frames, HiddenFrames, until

pytestmark = pytest.mark.integration


def test_two_people_find_each_other_and_chat_both_ways_with_ticks_and_typing(people):
    ann, ben = people("ann").register(), people("ben").register()
    ann.set_display_name("Ann Archer")
    # Ben is away (no page open) when Ann writes: her message stays SENT.
    ben.page.goto("about:blank")
    ann.start_chat(ben)
    ann.send("Hello Ben")
    tick = ann.bubble("Hello Ben").locator(".tick")
    expect(tick).to_have_attribute("data-status", "SENT")
    # Ben comes back: his page syncs and confirms, Ann sees DELIVERED; not READ while he has not opened it.
    ben.page.goto(ben.base + "/")
    item = ben.page.locator("#conversation-list button", has_text="Ann Archer")
    expect(item.locator(".badge")).to_have_text("1")
    expect(tick).to_have_attribute("data-status", "DELIVERED")
    expect(item.locator(".conversation-preview")).to_have_text("Ann Archer: Hello Ben")
    ben.screenshot("list-with-unread")
    ben.open_chat("Ann Archer")
    expect(tick).to_have_attribute("data-status", "READ")
    expect(item.locator(".badge")).to_have_count(0)
    # And back, live; Shift+Enter makes a new line, Enter sends.
    box = ben.page.get_by_label("Message", exact=True)
    box.type("Hi Ann")
    expect(ann.page.locator("#typing-indicator")).to_have_text(f"{ben.username} is typing…")
    expect(ben.page.locator("#typing-indicator")).to_have_text("")  # never shown to the typist
    box.press("Shift+Enter")
    box.type("two lines")
    box.press("Enter")
    expect(ann.bubble("Hi Ann\ntwo lines")).to_have_count(1)
    expect(ann.page.locator("#typing-indicator")).to_have_text("", timeout=10_000)  # it expires
    expect(ben.bubble("Hi Ann\ntwo lines").locator(".tick")).to_have_attribute("data-status", "READ")
    assert ann.messages() == ["Hello Ben", "Hi Ann\ntwo lines"]
    assert ben.messages() == ["Hello Ben", "Hi Ann\ntwo lines"]
    ann.screenshot("direct-chat")
    ben.screenshot("direct-chat")


def test_a_group_of_three_shows_who_has_seen_a_message(people):
    ann, ben, cat = people("ann").register(), people("ben").register(), people("cat").register()
    ben.set_display_name("Ben Baker")
    cat.set_display_name("Cat Cole")
    ann.start_chat(ben, cat, title="Trio")
    ann.send("Lunch at noon?")
    tick = ann.bubble("Lunch at noon?").locator(".tick")
    expect(tick).to_have_attribute("data-status", "DELIVERED")
    ben.open_chat("Trio")
    seen = ann.page.locator("#messages .seen-by")
    expect(seen).to_have_text("Seen by Ben Baker")
    expect(tick).to_have_attribute("data-status", "DELIVERED")  # not everyone yet
    cat.open_chat("Trio")
    expect(seen).to_have_text("Seen by Ben Baker, Cat Cole")
    expect(tick).to_have_attribute("data-status", "READ")
    cat.send("Yes!")
    expect(ben.bubble("Yes!").locator(".message-sender")).to_have_text("Cat Cole")
    ann.screenshot("group")


def test_ticks_go_sent_delivered_read_from_watermark_frames_in_a_direct_chat(people):
    ann, ben = people("ann"), people("ben")
    ann_frames, ben_frames = Frames(ann.page), Frames(ben.page)

    def statuses() -> list[dict]:
        return ann_frames.received_of("message.status")

    ann.register()
    ben.register()
    ben.page.goto("about:blank")  # away
    ann.start_chat(ben)
    for text in ("one", "two", "three"):
        ann.send(text)
    ticks = ann.page.locator("#messages .message .tick")
    expect(ticks).to_have_count(3)
    expect(ann.page.locator("#messages .tick[data-status=SENT]")).to_have_count(3)
    # Ben comes back: his page holds messages 1 to 3 and says so with a watermark, never message by message.
    ben.page.goto(ben.base + "/")
    expect(ann.page.locator("#messages .tick[data-status=DELIVERED]")).to_have_count(3)
    confirmations = ben_frames.sent_of("message.received")
    assert confirmations
    assert all(set(frame) == {"type", "conversationId", "upToSeq"} for frame in confirmations)
    assert max(frame["upToSeq"] for frame in confirmations) == 3
    # Ann's page moved all three from Ben's watermark: a frame covers every message up to its upToSeq.
    until(ann.page, lambda: any(f["status"] == "DELIVERED" and f.get("upToSeq") == 3 for f in statuses()))
    assert all("upToSeq" in f for f in statuses() if f["status"] in ("DELIVERED", "READ"))
    ben.open_chat(ann.username)
    expect(ann.page.locator("#messages .tick[data-status=READ]")).to_have_count(3)
    until(ann.page, lambda: any(f["status"] == "READ" and f.get("upToSeq") == 3 for f in statuses()))
    assert ann.messages() == ben.messages() == ["one", "two", "three"]
    ann.screenshot("watermark-ticks")


def test_a_group_shows_seen_by_from_read_watermarks_and_ticks_from_the_aggregate_alone(people):
    ann, ben, cat = people("ann").register(), people("ben").register(), people("cat").register()
    ben.set_display_name("Ben Baker")
    cat.set_display_name("Cat Cole")
    ann.start_chat(ben, cat, title="Trio")
    # A second tab of Ann's gets only the aggregate frames (`userId: null`): the per-member ones are kept back.
    assert ann.context is not None
    tab = ann.context.new_page()
    per_member = HiddenFrames(tab, lambda f: f.get("type") == "message.status" and f.get("userId") is not None)
    tab.goto(ann.base + "/")
    expect(tab.locator("body")).to_have_attribute("data-online", "true")
    tab.locator("#conversation-list button", has_text="Trio").click()
    expect(tab.locator("#composer")).to_be_visible()
    ann.send("Lunch at noon?")
    ann.send("At the corner?")
    expect(tab.locator("#messages .message")).to_have_count(2)
    # The pages of Ben and Cat hold both messages: DELIVERED for everyone, in both tabs.
    expect(ann.page.locator("#messages .tick[data-status=DELIVERED]")).to_have_count(2)
    expect(tab.locator("#messages .tick[data-status=DELIVERED]")).to_have_count(2)
    # Ben reads: his read watermark names him under Ann's latest message; not READ, as Cat has not read.
    ben.open_chat("Trio")
    seen = ann.page.locator("#messages .seen-by")
    expect(seen).to_have_text("Seen by Ben Baker")
    expect(ann.bubble("At the corner?").locator(".seen-by")).to_have_count(1)
    expect(ann.page.locator("#messages .tick[data-status=DELIVERED]")).to_have_count(2)
    # Without the per-member frames the second tab cannot know who read; it learns when everyone has.
    until(tab, lambda: any(f["status"] == "READ" for f in per_member.hidden))
    expect(tab.locator("#messages .seen-by")).to_have_count(0)
    expect(tab.locator("#messages .tick[data-status=DELIVERED]")).to_have_count(2)
    cat.open_chat("Trio")
    expect(seen).to_have_text("Seen by Ben Baker, Cat Cole")
    expect(ann.page.locator("#messages .tick[data-status=READ]")).to_have_count(2)
    expect(tab.locator("#messages .tick[data-status=READ]")).to_have_count(2)
    expect(tab.locator("#messages .seen-by")).to_have_text("Seen by Ben Baker, Cat Cole")
    # A fresh page knows the same from the conversation's answer (each participant's lastReadSeq).
    ann.page.reload()
    ann.open_chat("Trio")
    expect(seen).to_have_text("Seen by Ben Baker, Cat Cole")
    expect(ann.page.locator("#messages .tick[data-status=READ]")).to_have_count(2)
    ann.screenshot("group-watermarks")
    tab.screenshot(path=str(SCREENSHOT_DIR / "group-watermarks-ann-aggregate-only.png"))


def test_a_message_that_never_arrives_live_is_fetched_from_history_before_the_page_confirms(people):
    ann, ben = people("ann"), people("ben")
    # Every copy of one message to Ben's page is lost on the way: only history can fill the gap it leaves.
    lost = HiddenFrames(ben.page, lambda f: f.get("type") == "message.new" and f["message"]["content"] == "lost")
    ben_frames = Frames(ben.page)
    history = []
    ben.page.on("request", lambda request: history.append(request.url) if "after_seq=" in request.url else None)
    ann.register()
    ben.register()
    ann.start_chat(ben)
    ann.send("hello")
    expect(ann.bubble("hello").locator(".tick")).to_have_attribute("data-status", "DELIVERED")
    ann.send("lost")
    ann.send("after")
    until(ben.page, lambda: bool(lost.hidden))
    expect(ann.page.locator("#messages .tick[data-status=DELIVERED]")).to_have_count(3)
    assert any("after_seq=1" in url for url in history)
    # It confirmed only runs it held: 1, then 3 once 2 was there.
    assert [f["upToSeq"] for f in ben_frames.sent_of("message.received")] == [1, 3]
    ben.open_chat(ann.username)
    expect(ben.page.locator("#messages .message")).to_have_count(3)
    assert ben.messages() == ["hello", "lost", "after"]


def test_twenty_messages_to_an_offline_user_arrive_once_in_order_with_a_notification(people):
    ann, ben = people("ann").register(), people("ben").register()
    ann.start_chat(ben)
    ann.send("before")
    expect(ben.page.locator("#conversation-list button", has_text=ann.username)).to_be_visible()
    # Ben's page has confirmed "before" (Ann sees it DELIVERED) before he goes.
    expect(ann.bubble("before").locator(".tick")).to_have_attribute("data-status", "DELIVERED")
    ben.close()  # offline: his sockets close with the context
    sent = [f"offline message {i}" for i in range(1, 21)]
    for text in sent:
        ann.send(text)
    expect(ann.page.locator("#messages .message .tick[data-status=SENT]")).to_have_count(20)
    ben.open()
    ben.login()
    bell = ben.page.locator("#bell-count")
    expect(bell).to_be_visible()
    ben.open_chat(ann.username)
    expect(ben.page.locator("#messages .message")).to_have_count(21)
    assert ben.messages() == ["before", *sent]
    expect(ann.page.locator("#messages .message .tick[data-status=READ]")).to_have_count(21)
    # The bell: NEW_MESSAGE notifications were made while Ben was away; reading the conversation cleared them.
    expect(bell).to_be_hidden()
    ben.page.get_by_role("button", name="Notifications").click()
    expect(ben.page.locator("#notifications-empty")).to_be_visible()
    ben.screenshot("notifications")
    assert ben.messages() == ["before", *sent]  # nothing shown twice


def test_typing_before_the_session_check_returns_keeps_the_cursor_where_it_is(people):
    ann = people("ann")
    held = []  # the page's "am I signed in?" request, answered only when the test says
    ann.page.route("**/api/users/me/", lambda route: held.append(route))
    ann.page.goto(ann.base + "/")
    expect(ann.page.locator("body")).not_to_have_attribute("data-view", "auth")
    for _ in range(400):
        if held:
            break
        ann.page.wait_for_timeout(50)
    assert len(held) == 1
    ann.page.get_by_label("Username").fill(ann.username)
    password = ann.page.get_by_label("Password")
    password.focus()
    held[0].continue_()  # not signed in: the page settles on the sign-in form
    expect(ann.page.locator("body")).to_have_attribute("data-view", "auth")
    expect(password).to_be_focused()
    password.press_sequentially(PASSWORD)
    ann.page.get_by_role("button", name="Register").click()
    ann._signed_in()  # the whole password went where it was typed
    expect(ann.page.get_by_label("Username")).to_be_hidden()


def test_markup_in_messages_and_names_is_shown_as_text(people):
    ann, ben = people("ann").register(), people("ben", mobile=True).register()
    ann.set_display_name("<b>Ann</b>")
    ann.start_chat(ben)
    script = "<script>window.pwned = 1</script>"
    image = '<img src="x" onerror="window.pwned = 2">'
    ann.send(script)
    ann.send(image)
    # Both arrived (the list shows the last): nothing redraws the list under the click.
    expect(ben.page.locator("#conversation-list .conversation-preview")).to_have_text(f"<b>Ann</b>: {image}")
    ben.open_chat("<b>Ann</b>")  # the narrow layout: the list, then the pane
    expect(ben.bubble(image)).to_have_count(1)
    expect(ben.bubble(script)).to_have_count(1)
    assert ben.messages() == [script, image]
    assert ben.page.locator("#messages img, #messages script, #messages b").count() == 0
    assert ben.page.evaluate("window.pwned") is None
    ben.screenshot("markup-as-text")
    ben.page.get_by_role("button", name="Back to conversations").click()
    expect(ben.page.locator("#conversation-list .conversation-preview")).to_have_text(f"<b>Ann</b>: {image}")


def test_the_page_reconnects_after_a_web_server_restart_and_catches_up(people, web_stack):
    ann, ben = people("ann").register(), people("ben").register()
    ann.start_chat(ben)
    ann.send("before the restart")
    ben.open_chat(ann.username)
    expect(ann.bubble("before the restart").locator(".tick")).to_have_attribute("data-status", "READ")
    web_stack.web.terminate()
    for person in (ann, ben):
        expect(person.page.locator("#offline-banner")).to_be_visible()
    ann.send("sent while the server was down")
    expect(ann.bubble("sent while the server was down").locator(".tick")).to_have_attribute("data-status", "SENDING")
    ann.screenshot("offline")
    web_stack.web, _ = web_stack.start_web(port=web_stack.port)
    for person in (ann, ben):
        expect(person.page.locator("#offline-banner")).to_be_hidden(timeout=LIVE_MS)
    expect(ben.bubble("sent while the server was down")).to_have_count(1)
    ann.send("after the restart")
    expect(ben.bubble("after the restart")).to_have_count(1)
    expect(ann.bubble("after the restart").locator(".tick")).to_have_attribute("data-status", "READ")
    assert ben.messages() == ["before the restart", "sent while the server was down", "after the restart"]
    assert ann.messages() == ben.messages()


def test_scrolling_up_loads_older_history_in_pages_once_and_in_order(people):
    ann, ben = people("ann").register(), people("ben").register()
    ann.start_chat(ben)
    texts = [f"m{n:03d}" for n in range(1, 111)]  # two pages of 50 and a last one of 10
    for text in texts:  # past the send limit's burst the page waits for retryAfterMs and sends again
        ann.send(text)
    ben.open_chat(ann.username)
    expect(ben.bubble("m110")).to_have_count(1, timeout=60_000)
    assert ben.messages() == texts  # live, all of them
    # A fresh page: the pane opens on the newest page; scrolling up brings the older ones.
    ben.page.reload()
    ben.open_chat(ann.username)
    expect(ben.page.locator("#messages .message")).to_have_count(50)
    assert ben.messages() == texts[-50:]
    older = ben.page.locator("#messages")
    older.evaluate("list => { list.scrollTop = 0; }")
    expect(ben.page.locator("#messages .message")).to_have_count(100)
    assert ben.messages() == texts[-100:]
    older.evaluate("list => { list.scrollTop = 0; }")
    expect(ben.page.locator("#messages .message")).to_have_count(110)
    assert ben.messages() == texts
    ben.screenshot("history-scrolled-back")


def test_logging_out_in_one_tab_signs_out_the_other_tabs_of_the_browser(people):
    ann, ben = people("ann").register(), people("ben").register()
    ann.start_chat(ben)
    assert ann.context is not None
    other_tab = ann.context.new_page()  # the same browser: the same session
    other_tab.goto(ann.base + "/")
    # Connected, and caught up with what happened while it connected.
    expect(other_tab.locator("body")).to_have_attribute("data-online", "true")
    ann.send("from the first tab")
    expect(other_tab.locator("#conversation-list .conversation-preview")).to_contain_text("from the first tab")
    ann.page.get_by_role("button", name="Log out").click()
    expect(ann.page.locator("body")).to_have_attribute("data-view", "auth")
    expect(other_tab.get_by_role("button", name="Log in")).to_be_visible()
    expect(other_tab.locator("#app-view")).to_be_hidden()
    # Ben, signed in on his own browser, is not affected.
    expect(ben.page.locator("#conversation-list .conversation-preview")).to_contain_text("from the first tab")
    expect(ben.page.locator("#offline-banner")).to_be_hidden()


def test_a_list_answer_older_than_a_live_message_does_not_hide_it(people):
    ann, ben = people("ann").register(), people("ben").register()
    ann.start_chat(ben)
    ann.send("first")
    assert ann.context is not None
    tab = ann.context.new_page()
    held = []  # the list the tab asks for once connected, answered as of now but delivered later

    def hold_after_the_first(route):
        if not hasattr(hold_after_the_first, "seen"):
            hold_after_the_first.seen = True  # type: ignore[attr-defined]
            route.continue_()
        else:
            held.append((route, route.fetch()))

    tab.route("**/api/conversations/?cursor=*", hold_after_the_first)
    tab.goto(ann.base + "/")
    for _ in range(400):
        if held:
            break
        tab.wait_for_timeout(50)
    assert len(held) == 1
    preview = tab.locator("#conversation-list .conversation-preview")
    ann.send("second")
    expect(preview).to_have_text("You: second")  # live
    route, stale = held[0]
    route.fulfill(response=stale)  # written before "second" was sent
    expect(tab.locator("body")).to_have_attribute("data-online", "true")
    expect(preview).to_have_text("You: second")
    expect(ben.page.locator("#conversation-list .conversation-preview")).to_have_text(f"{ann.username}: second")
