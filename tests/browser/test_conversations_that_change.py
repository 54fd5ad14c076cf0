"""Contract 1.3 on the page, in Debian's Chromium against the real system: groups that change, messages that are
edited or deleted, and presence."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.client import register

pytestmark = pytest.mark.integration


def system_lines(person) -> list[str]:
    return person.page.locator("#messages .system-line").all_text_contents()


def test_an_admin_adds_renames_and_a_member_leaves_with_lines_for_each(people):
    ann, ben, dan = people("ann").register(), people("ben").register(), people("dan").register()
    ann.start_chat(ben, people("cat").register(), title="Crew")
    ann.send("Welcome")
    ben.open_chat("Crew")
    # The group's info: members and roles; ann is its admin.
    ann.page.get_by_role("button", name="Group info").click()
    members = ann.page.locator("#member-list li")
    expect(members).to_have_count(3)
    expect(members.filter(has_text=f"{ann.username} (you)").locator(".role")).to_have_text("admin")
    # Ann adds Dan with the user search; Dan's page gets the group live, without its earlier messages.
    ann.page.get_by_label("Add people").fill(dan.username[:-2])
    ann.page.get_by_role("button", name=re.compile(f"^Add {dan.username}")).click()
    expect(members).to_have_count(4)
    expect(ben.page.locator("#messages .system-line")).to_have_text([f"{ann.username} added {dan.username}"])
    dan.open_chat("Crew")
    expect(dan.page.locator("#messages .system-line")).to_have_text([f"{ann.username} added {dan.username}"])
    assert dan.messages() == []  # "Welcome" came before Dan joined
    # A rename reaches everyone's open pane.
    ann.page.get_by_label("Group title", exact=True).fill("Crew 2")
    ann.page.get_by_role("button", name="Rename").click()
    expect(ben.page.locator("#pane-title")).to_have_text("Crew 2")
    expect(ben.page.locator("#messages .system-line").last).to_have_text(
        f'{ann.username} renamed the group to "Crew 2"'
    )
    # Ann makes Ben admin; Ben sees the admin controls.
    ann.page.get_by_role("button", name=f"Make admin: {ben.username}").click()
    expect(ben.page.locator("#messages .system-line").last).to_have_text(f"{ann.username} made {ben.username} an admin")
    ben.page.get_by_role("button", name="Group info").click()
    expect(ben.page.get_by_role("button", name=f"Remove {dan.username} from the group")).to_be_visible()
    # Dan leaves: his pane keeps its history, read only, and the group leaves his list; the others see the line.
    dan.page.on("dialog", lambda dialog: dialog.accept())
    dan.page.get_by_role("button", name="Group info").click()
    dan.page.get_by_role("button", name="Leave group").click()
    expect(dan.page.locator("#pane-note")).to_have_text("You left this group.")
    expect(dan.page.locator("#composer")).to_be_hidden()
    expect(dan.page.locator("#conversation-list button", has_text="Crew")).to_have_count(0)
    expect(ann.page.locator("#messages .system-line").last).to_have_text(f"{dan.username} left")
    ann.send("After Dan")
    expect(ben.bubble("After Dan")).to_have_count(1)
    dan.page.wait_for_timeout(1000)
    expect(dan.bubble("After Dan")).to_have_count(0)
    ann.screenshot("group-changes")


def test_edit_and_delete_own_messages_seen_live_and_after_a_reload(people):
    ann, ben = people("ann").register(), people("ben").register()
    ann.start_chat(ben)
    ann.send("helo")
    ben.open_chat(ann.username)
    expect(ben.bubble("helo")).to_have_count(1)
    expect(ben.bubble("helo").get_by_role("button", name=re.compile("^Edit"))).to_have_count(0)  # not his
    # Ann edits: the composer takes the text; Enter saves.
    ann.bubble("helo").get_by_role("button", name="Edit message: helo").click()
    box = ann.page.get_by_label("Message", exact=True)
    expect(box).to_have_value("helo")
    expect(ann.page.locator("#editing-bar")).to_be_visible()
    box.fill("hello")
    box.press("Enter")
    expect(ben.bubble("hello").locator(".edited")).to_have_text("edited")
    expect(ann.bubble("hello").locator(".edited")).to_have_text("edited")
    assert ben.messages() == ["hello"]  # the edit event is not a message of its own
    # Ann deletes it: a tombstone in place for both.
    ann.page.on("dialog", lambda dialog: dialog.accept())
    ann.bubble("hello").get_by_role("button", name="Delete message: hello").click()
    expect(ben.bubble("Message deleted")).to_have_count(1)
    expect(ann.bubble("Message deleted")).to_have_count(1)
    # After a reload, history shows the same.
    ben.page.reload()
    ben.open_chat(ann.username)
    expect(ben.bubble("Message deleted")).to_have_count(1)
    assert ben.messages() == ["Message deleted"]
    ben.screenshot("deleted")


def test_the_dot_goes_off_and_on_as_the_other_persons_page_closes_and_opens(people, web_stack):
    ann, ben = people("ann").register(), people("ben").register()
    cat = register(web_stack.base, "cat")  # never opens the page: registered over REST
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
