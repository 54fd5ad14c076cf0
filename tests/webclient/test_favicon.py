"""The site's icon: at /favicon.ico, where browsers ask for it on every page, and linked from the chat page."""

import re

from django.contrib.staticfiles import finders


def test_favicon_ico_answers_with_the_icon(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/svg+xml"
    assert response.content.startswith(b"<svg ")
    assert "max-age" in response["Cache-Control"]
    assert client.head("/favicon.ico").status_code == 200
    assert client.post("/favicon.ico").status_code == 405


def test_the_chat_page_links_the_same_icon(client):
    html = client.get("/").content.decode()
    (href,) = re.findall(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html)
    found = finders.find(href.removeprefix("/static/"))
    assert found, f"{href} is not a static file of the project"
    with open(found, "rb") as icon:
        assert icon.read() == client.get("/favicon.ico").content
