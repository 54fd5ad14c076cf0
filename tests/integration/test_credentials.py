"""An open socket lasts no longer than its credential: logout and token expiry end it (`error` frame, 1008)."""

import uuid

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.support.client import Socket, conversation

pytestmark = pytest.mark.integration

POLICY_VIOLATION = 1008


async def test_logging_out_closes_the_sockets_opened_with_that_token_and_no_others(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    first, second, bobs = await alice.ws(), await alice.ws(), await bob.ws()
    # The path works: both of Alice's sockets get Bob's message.
    sent = await bobs.send_message(direct["id"], "before")
    for socket in (first, second):
        await socket.wait_for(
            lambda f: f.get("type") == "message.new" and f["message"]["id"] == sent["message"]["id"], timeout=30
        )

    assert alice.api("POST", "/api/auth/logout/").status_code == 204
    for socket in (first, second):
        assert await socket.wait_closed(timeout=15) == POLICY_VIOLATION
        assert socket.of_type("error")[-1]["code"] == "logged_out"
    with pytest.raises(InvalidStatus) as refused:
        await alice.ws()
    assert refused.value.response.status_code == 403
    # Bob's socket, opened with his own token, stays open and keeps working.
    await bobs.send_message(direct["id"], "after")
    assert (await bobs.request({"type": "ping"}))["type"] == "pong"
    await bobs.close()


async def test_logging_out_of_the_page_closes_its_session_sockets(make_user, base):
    alice = make_user("alice")
    password = "a long password 1"
    username = f"s{alice.username}"
    assert requests.post(f"{base}/api/auth/register/", json={"username": username, "password": password}).ok
    browser = requests.Session()
    browser.get(f"{base}/", timeout=10)
    headers = {"X-CSRFToken": browser.cookies["csrftoken"], "Referer": f"{base}/"}
    credentials = {"username": username, "password": password}
    assert browser.post(f"{base}/api/auth/session/", json=credentials, headers=headers, timeout=10).ok
    cookies = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
    page = {"Cookie": cookies, "Origin": base}
    tab = await Socket.open(base, None, headers=page)
    other = await alice.ws()  # Alice's token, not the session
    assert (await tab.request({"type": "ping"}))["type"] == "pong"

    headers["X-CSRFToken"] = browser.cookies["csrftoken"]  # login rotates it
    assert browser.post(f"{base}/api/auth/logout/", headers=headers, timeout=10).status_code == 204
    assert await tab.wait_closed(timeout=15) == POLICY_VIOLATION
    assert tab.of_type("error")[-1]["code"] == "logged_out"
    assert (await other.request({"type": "ping"}))["type"] == "pong"
    await other.close()


async def test_a_socket_closes_when_its_token_expires(make_user, stack):
    alice = make_user("alice")
    # Issued so that it expires 3 s from now (CHAT_TOKEN_TTL_SECONDS is the default 7 days).
    stack.query(
        "UPDATE authtoken_token SET created = now() - interval '7 days' + interval '3 seconds' "
        "WHERE key = %s RETURNING key",
        alice.token,
    )
    socket = await alice.ws()
    assert (await socket.request({"type": "ping"}))["type"] == "pong"  # open and working until then
    assert await socket.wait_closed(timeout=20) == POLICY_VIOLATION
    assert socket.of_type("error")[-1]["code"] == "token_expired"
    with pytest.raises(InvalidStatus):
        await alice.ws()
    # A fresh user's socket opened at the same time is still open.
    fresh = await make_user(f"fresh-{uuid.uuid4().hex[:4]}").ws()
    assert (await fresh.request({"type": "ping"}))["type"] == "pong"
    await fresh.close()
