"""Every page asks nothing of any server but this one: the chat page signed out, signed in and at a
conversation's address, Swagger UI, Redoc and the admin's login. A request elsewhere (a CDN's script, font or
logo) fails the test, whether or not it would have succeeded."""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, SCREENSHOT_DIR, Requests
from tests.support.stack import Stack

pytestmark = pytest.mark.integration

# What each page shows once it has drawn itself from what it loaded.
PAGES = {
    "/api/docs/": ".swagger-ui .opblock-summary-path[data-path='/api/conversations/']",
    # The menu's foot, where Redoc would put its logo from its own CDN.
    "/api/redoc/": "text=API docs by Redocly",
    "/admin/login/": "#login-form",
    "/": "#auth-form",
}


def screenshot(page: Page, label: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"same-origin-{label}.png"))


@pytest.mark.parametrize("path", PAGES)
def test_the_page_loads_everything_from_this_server(browser, web_stack: Stack, path: str):
    base = web_stack.base  # type: ignore[attr-defined]
    context = browser.new_context(viewport=DESKTOP)
    requests = Requests(context, base)
    page = context.new_page()
    try:
        page.goto(base + path)
        expect(page.locator(PAGES[path]).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        screenshot(page, path.strip("/").replace("/", "-") or "sign-in")
    finally:
        context.close()
    assert f"{base}{path}" in requests.urls
    assert not requests.elsewhere(), f"{path} asked another origin for {requests.elsewhere()}"


def test_the_chat_signed_in_and_at_a_conversations_address_loads_everything_from_this_server(people):
    ann = people("ann").register()
    requests = Requests(ann.context, ann.base)  # type: ignore[arg-type]
    # The whole page again, signed in (its socket connected), then at a conversation's address.
    ann.page.reload()
    expect(ann.page.locator("body")).to_have_attribute("data-online", "true")
    address = f"{ann.base}/c/{uuid.uuid4()}"
    ann.page.goto(address)
    expect(ann.page.locator("#pane-title")).to_have_text("Conversation not found")
    ann.page.wait_for_load_state("networkidle")
    screenshot(ann.page, "chat")
    assert address in requests.urls and any("/ws/chat/" in url for url in requests.urls), requests.urls
    assert not requests.elsewhere(), f"the chat page asked another origin for {requests.elsewhere()}"
