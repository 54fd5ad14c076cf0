"""Swagger UI and Redoc in a real browser: each page asks nothing of any server but this one."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import SCREENSHOT_DIR
from tests.support.stack import Stack

# What each page shows once it has read the schema and drawn the operations.
PAGES = {
    "/api/docs/": ".swagger-ui .opblock-summary-path[data-path='/api/conversations/']",
    # The menu's foot, where Redoc would put its logo from its own CDN.
    "/api/redoc/": "text=API docs by Redocly",
}


@pytest.mark.parametrize("path", PAGES)
def test_the_docs_page_loads_everything_from_this_server(browser: Browser, web_stack: Stack, path: str):
    base = web_stack.base  # type: ignore[attr-defined]
    origin = urlsplit(base)._replace(path="", query="", fragment="").geturl()
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    requested: list[str] = []
    # Every request the page makes, the browser's own (the icon) included, whether or not it succeeds.
    context.on("request", lambda request: requested.append(request.url))
    try:
        page.goto(base + path)
        expect(page.locator(PAGES[path]).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / f"api-docs-{path.strip('/').replace('/', '-')}.png"))
    finally:
        context.close()
    assert f"{base}/api/schema/" in requested
    local = (origin + "/", "data:", "blob:")
    elsewhere = [url for url in requested if not url.startswith(local)]
    assert not elsewhere, f"{path} asked another origin for {elsewhere}"
