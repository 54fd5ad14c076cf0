"""The README's pictures of the web client, made again from a real system: `make screenshots`.

Not a test module (pytest collects it only when named, as `make screenshots` does): it builds one scene,
Ann's group lunch with Ben and Cat over two days beside her other chats, and writes
`docs/web-client.png` (a desktop browser) and `docs/web-client-phone.png` (a phone). Every time in the
picture is fixed, in the database and in the browser's clock, and the browsers speak British English in
UTC, so the pictures come out the same on every run but for the group's colour (picked from its id, which
is random).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import Person
from tests.support.stack import ROOT, Stack

OUT = Path(os.environ.get("SCREENSHOTS_DIR", ROOT / "docs"))
NOW = datetime(2026, 11, 27, 12, 4, tzinfo=UTC)  # a Friday
SETTINGS = {"locale": "en-GB", "timezone_id": "UTC"}
# (who writes, in which chat, what, when): in the order they are sent.
SCENE = [
    ("dan", "dan", "Here are the slides from Monday", "2026-11-16T16:20:00"),
    ("ann", "dan", "Thanks, they look great!", "2026-11-16T16:31:00"),
    ("ben", "trio", "Anyone up for lunch tomorrow? 🍜", "2026-11-26T18:02:00"),
    ("cat", "trio", "Count me in!", "2026-11-26T18:05:00"),
    ("cat", "trio", "The new place on Elm Street?", "2026-11-26T18:05:40"),
    ("ann", "trio", "Yes! Noon works for me 🎉", "2026-11-26T18:20:00"),
    ("ben", "ben", "Can you bring the charger back?", "2026-11-27T09:15:00"),
    ("ben", "trio", "Running five minutes late 🚲", "2026-11-27T11:52:00"),
    ("ann", "trio", "No rush, we got a table by the window.", "2026-11-27T11:58:00"),
]
NAMES = {"ann": "Ann Archer", "ben": "Ben Baker", "cat": "Cat Cole", "dan": "Dan Dunn"}


def open_chat(person: Person, title: str) -> None:
    """Open the chat of this title (a preview may name a person too: only the title counts)."""
    title_text = person.page.locator(".conversation-title", has_text=re.compile(f"^{re.escape(title)}$"))
    person.page.locator("#conversation-list button", has=title_text).click()
    expect(person.page.locator("#pane-title")).to_have_text(title)


def frozen(person: Person) -> Person:
    """Fix the person's browser clock at NOW and load the page again with it."""
    person.page.clock.set_fixed_time(NOW)
    person.page.reload()
    expect(person.page.locator("#app-view")).to_be_visible()
    return person


def shoot(person: Person, name: str) -> None:
    person.page.evaluate("document.activeElement && document.activeElement.blur()")
    person.page.wait_for_load_state("networkidle")
    OUT.mkdir(parents=True, exist_ok=True)
    person.page.screenshot(path=str(OUT / name))


def test_the_readme_pictures(people, web_stack: Stack):
    cast = {key: people(key, **SETTINGS).register() for key in NAMES}
    for key, person in cast.items():
        person.set_display_name(NAMES[key])
    ann, ben, cat, dan = cast["ann"], cast["ben"], cast["cat"], cast["dan"]
    ann.start_chat(dan)
    ann.start_chat(ben, cat, title="Lunch crew")
    ann.start_chat(ben)
    chats = {"dan": "Dan Dunn", "trio": "Lunch crew", "ben": "Ben Baker"}
    # The others' lists show a new chat once it has a message, or after a reload.
    for person in (ben, cat, dan):
        person.page.reload()
        expect(person.page.locator("#conversation-list button")).to_have_count(2 if person is ben else 1)
    for who, chat, text, _ in SCENE:
        person = cast[who]
        title = "Ann Archer" if chat in ("dan", "ben") and who != "ann" else chats[chat]
        open_chat(person, title)
        person.send(text)
        expect(person.bubble(text).locator(".tick")).to_have_attribute("data-status", re.compile("DELIVERED|READ"))
    # Ben and Cat have read the group; Ann has not yet opened Ben's message.
    for person in (ben, cat):
        open_chat(person, "Lunch crew")
    for _, _, text, when in SCENE:
        web_stack.query(
            "UPDATE messaging_message SET created_at = %s WHERE content = %s RETURNING id",
            datetime.fromisoformat(when).replace(tzinfo=UTC),
            text,
        )
    # Tall enough for the two days of the group's history.
    ann.page.set_viewport_size({"width": 1100, "height": 840})
    open_chat(frozen(ann), "Lunch crew")
    expect(ann.page.locator("#messages .seen-by")).to_have_text("Seen by Ben Baker, Cat Cole")
    shoot(ann, "web-client.png")
    # The same on a phone: Ann signed in there too.
    phone = Person(ann.browser, ann.base, "ann-phone", mobile=True, **SETTINGS)
    phone.username = ann.username
    try:
        open_chat(frozen(phone.login()), "Lunch crew")
        expect(phone.page.locator("#messages .seen-by")).to_have_text("Seen by Ben Baker, Cat Cole")
        shoot(phone, "web-client-phone.png")
    finally:
        phone.close()
