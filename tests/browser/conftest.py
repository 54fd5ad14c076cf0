"""A real browser against the real system: Debian's Chromium driven by Playwright.

One stack (daphne, the bridge, PostgreSQL, Redis, Kafka) serves the module;
each person in a test is a browser context of their own (their own cookies:
their own session). Every test leaves a screenshot of each page under
`<run>/screenshots/`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, WebSocketRoute, expect, sync_playwright

from tests.support.stack import LOG_DIR, Stack, free_port

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOT_DIR = LOG_DIR.parent / "screenshots"
# Delivery goes through Kafka and the bridge: allow for a loaded machine.
LIVE_MS = 20_000
PASSWORD = "a long password 1"
DESKTOP = {"width": 1100, "height": 760}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=LIVE_MS)


@pytest.fixture(scope="module")
def web_stack() -> Iterator[Stack]:
    # Presence frames at most one per person per second (the default is 10): the dots change within a test's wait.
    stack = Stack.create("browser", CHAT_PRESENCE_NOTIFY_SECONDS="1")
    stack.manage("collectstatic", "--noinput")
    try:
        stack.start_bridge()
        stack.port = free_port()  # type: ignore[attr-defined]
        stack.web, stack.base = stack.start_web(port=stack.port)  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()


# Module scope: Playwright's sync API holds an event loop while it runs, and the
# asyncio tests of other modules need the thread's loop free.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


class Person:
    """One user in a browser context of their own."""

    def __init__(self, browser: Browser, base: str, name: str, *, mobile: bool = False, **context_options) -> None:
        self.browser = browser
        self.base = base
        self.name = name
        self.username = f"{name}-{uuid.uuid4().hex[:8]}"
        self.context: BrowserContext | None = None
        # Further contexts of this person (open() again) have the same screen, language and time zone.
        self.mobile = mobile
        self.context_options = context_options
        self.page: Page = self.open()

    def open(self, path: str = "/") -> Page:
        """Open a new browser context (no cookies) on the page at `path`."""
        viewport = PHONE if self.mobile else DESKTOP
        self.context = self.browser.new_context(viewport=viewport, **self.context_options)
        self.page = self.context.new_page()
        self.page.goto(self.base + path)
        # The page has asked whether this context is signed in and shows its answer.
        expect(self.page.locator("body")).to_have_attribute("data-view", re.compile("auth|app"))
        return self.page

    def close(self) -> None:
        """Close the context: the user's sockets close with it."""
        if self.context is not None:
            self.context.close()
            self.context = None

    def register(self) -> Person:
        self._credentials()
        self.page.get_by_role("button", name="Register").click()
        return self._signed_in()

    def login(self) -> Person:
        self._credentials()
        self.page.get_by_role("button", name="Log in").click()
        return self._signed_in()

    def _credentials(self) -> None:
        self.page.get_by_label("Username").fill(self.username)
        self.page.get_by_label("Password").fill(PASSWORD)

    def _signed_in(self) -> Person:
        expect(self.page.locator("#app-view")).to_be_visible()
        expect(self.page.locator("#offline-banner")).to_be_hidden()
        return self

    def set_display_name(self, display_name: str) -> None:
        self.page.get_by_role("button", name="Profile").click()
        self.page.get_by_label("Display name (what others see)").fill(display_name)
        self.page.get_by_role("button", name="Save").click()
        expect(self.page.locator("#me-name")).to_have_text(display_name)
        expect(self.page.locator("#profile-panel")).to_be_hidden()  # saved, it closes

    def start_chat(self, *people: Person, title: str = "") -> None:
        """Find each person by their username and start a chat with them."""
        search = self.page.get_by_label("Start a chat: find people")
        for person in people:
            search.fill(person.username[:-2])
            self.page.locator("#search-results button", has_text=person.username).click()
        if title:
            self.page.get_by_label("Group title (optional)").fill(title)
        self.page.get_by_role("button", name="Start chat").click()
        # Open once the message box has the focus (the composer may be showing an earlier chat already, and
        # typing elsewhere before then would end up in the box).
        expect(self.page.get_by_label("Message", exact=True)).to_be_focused()

    def open_chat(self, title: str) -> None:
        self.page.locator("#conversation-list button", has_text=title).click()
        expect(self.page.locator("#pane-title")).to_have_text(title)

    def send(self, text: str) -> None:
        box = self.page.get_by_label("Message", exact=True)
        box.fill(text)
        box.press("Enter")

    def messages(self) -> list[str]:
        return self.page.locator("#messages .message .message-content").all_text_contents()

    def bubble(self, text: str):
        content = self.page.locator(".message-content", has_text=re.compile(f"^{re.escape(text)}$"))
        return self.page.locator("#messages .message", has=content)

    def screenshot(self, label: str) -> None:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOT_DIR / f"{label}-{self.name}.png"))


class Frames:
    """The JSON frames that one page's sockets send and receive, from its next socket on."""

    def __init__(self, page: Page) -> None:
        self.sent: list[dict] = []
        self.received: list[dict] = []
        page.on("websocket", self._follow)

    def _follow(self, socket: WebSocket) -> None:
        socket.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        socket.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

    def sent_of(self, kind: str) -> list[dict]:
        return [frame for frame in self.sent if frame.get("type") == kind]

    def received_of(self, kind: str) -> list[dict]:
        return [frame for frame in self.received if frame.get("type") == kind]


class Requests:
    """Every request of a context's pages from now on (the browser's own, such as the icon, included), and the
    address of every WebSocket they open."""

    def __init__(self, context: BrowserContext, base: str) -> None:
        self.origin = urlsplit(base)
        self.urls: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))
        for page in context.pages:
            self.follow(page)
        context.on("page", self.follow)

    def follow(self, page: Page) -> None:
        page.on("websocket", lambda socket: self.urls.append(socket.url))

    def elsewhere(self) -> list[str]:
        """The requests to another scheme, host or port than the page's (its WebSocket may use ws: for http:)."""
        same_scheme = {"http": ("http", "ws"), "https": ("https", "wss")}[self.origin.scheme]
        return [
            url
            for url in self.urls
            if not url.startswith(("data:", "blob:"))
            and not (urlsplit(url).scheme in same_scheme and urlsplit(url).netloc == self.origin.netloc)
        ]


def until(page: Page, condition) -> None:
    """Wait (pumping Playwright's events) until `condition()` holds; fail after LIVE_MS."""
    for _ in range(LIVE_MS // 50):
        if condition():
            return
        page.wait_for_timeout(50)
    assert condition()


class HiddenFrames:
    """Keeps the server's frames that `hide(frame)` picks from a page's sockets, and forwards the rest."""

    def __init__(self, page: Page, hide) -> None:
        self.hide = hide
        self.hidden: list[dict] = []
        page.route_web_socket(re.compile(r".*/ws/chat/.*"), self._route)

    def _route(self, page_side: WebSocketRoute) -> None:
        server = page_side.connect_to_server()

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if self.hide(frame):
                self.hidden.append(frame)
            else:
                page_side.send(message)

        server.on_message(from_server)


@pytest.fixture
def people(browser: Browser, web_stack: Stack, request: pytest.FixtureRequest) -> Iterator[callable]:
    made: list[Person] = []

    def make(name: str, **kwargs) -> Person:
        person = Person(browser, web_stack.base, name, **kwargs)  # type: ignore[attr-defined]
        made.append(person)
        return person

    yield make
    for person in made:
        if person.context is not None:
            try:
                person.screenshot(request.node.name)
            finally:
                person.close()
