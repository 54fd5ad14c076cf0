"""A conversation's address, `/c/<id>`, is the chat page itself: whatever the id, the page answers (and opens
the conversation, or says it is not found), never an error of the server."""

import uuid

import pytest


@pytest.mark.parametrize("path", [f"/c/{uuid.uuid4()}", "/c/not-an-id", "/c/%3Cb%3Ex%3C%2Fb%3E", "/c/a/b/"])
def test_a_conversation_address_serves_the_chat_page(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert b'id="app-view"' in response.content
    assert response["Content-Security-Policy"] == client.get("/")["Content-Security-Policy"]
    assert response["Cache-Control"] == "no-store"
