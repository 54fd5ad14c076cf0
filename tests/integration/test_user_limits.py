"""Limits per user and per client address, shared by every web process (PROTOCOL.md section 5).

A system of its own, with two web processes on two ports and low limits, so
that each limit is reached in a few requests and shown to hold across
processes. One reverse proxy is trusted, so each test speaks from addresses
of its own (X-Forwarded-For).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from websockets.exceptions import ConnectionClosed

from tests.support.client import Socket, User, conversation
from tests.support.stack import Proc, Stack

LIMITS = {
    "CHAT_TRUSTED_PROXIES": "1",
    "CHAT_LOGIN_RATE_PER_USERNAME": "3/h",
    "CHAT_LOGIN_RATE_PER_ADDRESS": "5/h",
    "CHAT_REGISTER_RATE_PER_ADDRESS": "3/h",
    "CHAT_REST_SEND_RATE": "3/h",
    "CHAT_SEND_BURST": "5",
    "CHAT_SEND_RATE_PER_SECOND": "0.01",
    "CHAT_SYNC_RATE": "3/h",
    "CHAT_TYPING_RATE": "4/h",
    "CHAT_MAX_SOCKETS_PER_USER": "3",
    # Sockets of a killed process stop counting after this (a heartbeat a second).
    "CHAT_PRESENCE_TTL_SECONDS": "3",
}

_addresses = (f"198.51.100.{i % 250}" if i < 250 else f"198.51.101.{i % 250}" for i in itertools.count(1))


def fresh_address() -> str:
    """Return a client address no other request of this module used."""
    return next(_addresses)


@dataclass
class Limits:
    stack: Stack
    web1: str
    web2: str


@pytest.fixture(scope="module")
def limits() -> Iterator[Limits]:
    stack = Stack.create("limits", **LIMITS)
    try:
        stack.start_bridge()
        _proc1, web1 = stack.start_web()
        _proc2, web2 = stack.start_web()
        yield Limits(stack, web1, web2)
    finally:
        stack.stop()


@dataclass
class Account:
    user: User
    password: str


def post(base: str, path: str, body: dict, address: str) -> requests.Response:
    return requests.post(f"{base}{path}", json=body, headers={"X-Forwarded-For": address}, timeout=15)


def login(base: str, username: str, password: str, address: str) -> requests.Response:
    return post(base, "/api/auth/token/", {"username": username, "password": password}, address)


def new_account(base: str, prefix: str = "user") -> Account:
    """Register a user from an address of its own and log it in."""
    username, password, address = f"{prefix}-{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}", fresh_address()
    response = post(base, "/api/auth/register/", {"username": username, "password": password}, address)
    assert response.status_code == 201, response.text
    user_id = response.json()["id"]
    response = login(base, username, password, address)
    assert response.status_code == 200, response.text
    return Account(User(id=user_id, username=username, token=response.json()["token"], base=base), password)


def assert_rate_limited(response: requests.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


### Login and registration ###


def test_failed_logins_lock_the_username_across_processes_and_addresses(limits):
    account = new_account(limits.web1, "victim")
    name = account.user.username
    # Control: the right password logs in (and a success does not count).
    assert login(limits.web1, name, account.password, fresh_address()).status_code == 200
    # Three wrong guesses, from three addresses, on both processes, in any case: each answered.
    for base, guess in [(limits.web1, name), (limits.web2, name.upper()), (limits.web1, name.title())]:
        assert login(base, guess, "wrong password", fresh_address()).status_code == 400
    # The next attempt is refused before the password is checked, even the right one.
    assert_rate_limited(login(limits.web2, name, account.password, fresh_address()))
    assert_rate_limited(login(limits.web1, name.upper(), account.password, fresh_address()))
    # Another user logs in meanwhile.
    other = new_account(limits.web2, "other")
    assert login(limits.web2, other.user.username, other.password, fresh_address()).status_code == 200


def test_failed_logins_lock_the_address_whatever_the_username(limits):
    account = new_account(limits.web1, "shared-office")
    address, elsewhere = fresh_address(), fresh_address()
    assert login(limits.web1, account.user.username, account.password, address).status_code == 200
    # Five failures from one address, each for another name (none reaches its own limit).
    for i in range(5):
        base = limits.web1 if i % 2 else limits.web2
        assert login(base, f"nobody-{uuid.uuid4().hex[:8]}", "guess", address).status_code == 400
    assert_rate_limited(login(limits.web1, account.user.username, account.password, address))
    # The same user from another address is not held back.
    assert login(limits.web2, account.user.username, account.password, elsewhere).status_code == 200


def test_registrations_are_limited_per_address_across_processes(limits):
    address, elsewhere = fresh_address(), fresh_address()

    def register(base: str, source: str) -> requests.Response:
        body = {"username": f"reg-{uuid.uuid4().hex[:10]}", "password": f"pw-{uuid.uuid4().hex}"}
        return post(base, "/api/auth/register/", body, source)

    assert [register(base, address).status_code for base in (limits.web1, limits.web2, limits.web1)] == [201] * 3
    assert_rate_limited(register(limits.web2, address))
    assert register(limits.web1, elsewhere).status_code == 201


def test_admin_login_shares_the_limit_on_failed_logins(limits):
    account = new_account(limits.web1, "operator")
    limits.stack.query(
        "UPDATE auth_user SET is_staff = true, is_superuser = true WHERE id = %s RETURNING id", int(account.user.id)
    )

    def admin_login(password: str) -> requests.Response:
        session = requests.Session()
        page = session.get(f"{limits.web1}/admin/login/", timeout=15)
        assert page.status_code == 200
        form = {
            "username": account.user.username,
            "password": password,
            "next": "/admin/",
            "csrfmiddlewaretoken": re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1),
        }
        headers = {"X-Forwarded-For": fresh_address()}
        return session.post(
            f"{limits.web1}/admin/login/", data=form, headers=headers, allow_redirects=False, timeout=15
        )

    ok = admin_login(account.password)
    assert ok.status_code == 302 and ok.headers["Location"] == "/admin/"
    for _ in range(3):
        assert admin_login("wrong password").status_code == 200  # the form again, with its error
    refused = admin_login(account.password)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert "Too many login attempts" in refused.text
    # The API counts the same failures.
    assert_rate_limited(login(limits.web2, account.user.username, account.password, fresh_address()))


def test_rest_sends_are_limited_per_user_across_processes(limits):
    alice, bob = new_account(limits.web1, "alice").user, new_account(limits.web1, "bob").user
    direct = conversation(alice, bob)
    path = f"/api/conversations/{direct['id']}/messages/"

    def send(user: User, base: str) -> requests.Response:
        user.base = base
        return user.api("POST", path, {"content": "hi", "clientMessageId": uuid.uuid4().hex})

    assert [send(alice, base).status_code for base in (limits.web1, limits.web2, limits.web1)] == [201] * 3
    assert_rate_limited(send(alice, limits.web2))
    assert_rate_limited(send(alice, limits.web1))
    assert send(bob, limits.web2).status_code == 201


### WebSocket ###


async def open_sockets(user: User, *bases: str) -> list[Socket]:
    sockets = []
    for base in bases:
        user.base = base
        sockets.append(await user.ws())
    return sockets


async def close_all(*sockets: Socket) -> None:
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)


def assert_ws_rate_limited(reply: dict) -> None:
    assert reply["type"] == "error" and reply["code"] == "rate_limited", reply
    assert isinstance(reply["retryAfterMs"], int) and reply["retryAfterMs"] >= 1


async def test_sends_are_limited_per_user_across_sockets_and_processes(limits):
    alice, bob = new_account(limits.web1, "alice").user, new_account(limits.web1, "bob").user
    direct = conversation(alice, bob)
    s1, s2 = await open_sockets(alice, limits.web1, limits.web2)
    (b,) = await open_sockets(bob, limits.web2)
    try:
        # The burst of five, spent from two sockets on two processes.
        for socket in (s1, s2, s1, s2, s1):
            await socket.send_message(direct["id"], "hi")
        frame = {"type": "message.send", "conversationId": direct["id"], "content": "one more"}
        assert_ws_rate_limited(await s2.request({**frame, "clientMessageId": uuid.uuid4().hex}))
        assert_ws_rate_limited(await s1.request({**frame, "clientMessageId": uuid.uuid4().hex}))
        # Others are not held back.
        await b.send_message(direct["id"], "still fine")
    finally:
        await close_all(s1, s2, b)
    refused = limits.stack.query(
        "SELECT count(*) FROM messaging_message WHERE conversation_id = %s AND content = 'one more'", direct["id"]
    )
    assert refused == [(0,)]


async def test_typing_true_goes_out_once_per_user_and_typing_frames_are_limited(limits):
    alice, bob = new_account(limits.web1, "alice").user, new_account(limits.web1, "bob").user
    direct = conversation(alice, bob)
    s1, s2 = await open_sockets(alice, limits.web1, limits.web2)
    (b,) = await open_sockets(bob, limits.web1)

    def typing(is_typing: bool) -> dict:
        return {"type": "typing", "conversationId": direct["id"], "isTyping": is_typing}

    def seen(is_typing: bool) -> list[dict]:
        return [f for f in b.of_type("typing") if f["isTyping"] is is_typing]

    try:
        await s1.send(typing(True))  # 1st typing frame out
        await b.wait_for(lambda f: f.get("type") == "typing" and f["isTyping"] is True)
        await s2.send(typing(True))  # within 2 s, from another socket and process: dropped
        await s2.send(typing(False))  # 2nd out; published after s2's true would have been
        await b.wait_for(lambda f: f.get("type") == "typing" and f["isTyping"] is False)
        assert len(seen(True)) == 1, b.of_type("typing")
        # After false, the next true goes at once.
        await s2.send(typing(True))  # 3rd
        await b.wait_for(lambda f: f.get("type") == "typing" and f["isTyping"] is True, count=2)
        await s1.send(typing(False))  # 4th
        await b.wait_for(lambda f: f.get("type") == "typing" and f["isTyping"] is False, count=2)
        # The fifth typing frame of the user is over the limit, answered with rate_limited.
        assert_ws_rate_limited(await s1.request(typing(True)))
        assert_ws_rate_limited(await s2.request(typing(False)))
        # Bob's own typing still goes out to Alice.
        await b.send(typing(True))
        await s1.wait_for(lambda f: f.get("type") == "typing" and f["userId"] == bob.id)
    finally:
        await close_all(s1, s2, b)


async def test_sync_is_limited_per_user_across_sockets_and_processes(limits):
    alice, bob = new_account(limits.web1, "alice").user, new_account(limits.web1, "bob").user
    s1, s2 = await open_sockets(alice, limits.web1, limits.web2)
    (b,) = await open_sockets(bob, limits.web2)
    try:
        for socket in (s1, s2, s1):
            assert (await socket.request({"type": "sync"}))["type"] == "sync.done"
        assert_ws_rate_limited(await s2.request({"type": "sync"}))
        assert_ws_rate_limited(await s1.request({"type": "sync"}))
        assert (await b.request({"type": "sync"}))["type"] == "sync.done"
    finally:
        await close_all(s1, s2, b)


async def alive(socket: Socket) -> bool:
    """Return whether the socket answers a ping."""
    try:
        return (await socket.request({"type": "ping"}, timeout=10))["type"] == "pong"
    except (AssertionError, ConnectionClosed):
        return False


async def test_sockets_over_the_per_user_cap_are_closed_with_1008(limits):
    alice, bob = new_account(limits.web1, "alice").user, new_account(limits.web1, "bob").user
    held = await open_sockets(alice, limits.web1, limits.web2, limits.web1)
    (b,) = await open_sockets(bob, limits.web2)
    extra: list[Socket] = []
    try:
        assert [await alive(s) for s in held] == [True] * 3
        (over,) = await open_sockets(alice, limits.web2)
        extra.append(over)
        assert await over.wait_closed() == 1008
        assert await alive(b)  # another user is not held back
        # A closed socket frees its place.
        await held.pop(0).close()
        (again,) = await open_sockets(alice, limits.web1)
        extra.append(again)
        assert await alive(again)
    finally:
        await close_all(*held, *extra, b)


async def test_sockets_of_a_killed_process_stop_counting_after_the_presence_ttl(limits):
    carol = new_account(limits.web1, "carol").user
    doomed_proc, doomed = limits.stack.start_web()
    on_doomed = await open_sockets(carol, doomed, doomed)
    (kept,) = await open_sockets(carol, limits.web1)
    extra: list[Socket] = []
    try:
        (over,) = await open_sockets(carol, limits.web2)
        extra.append(over)
        assert await over.wait_closed() == 1008
        kill(doomed_proc)  # no chance to remove its sockets from Redis
        for socket in on_doomed:
            await socket.wait_closed(timeout=15)
        # Their members age out within the TTL (3 s here); then two new sockets fit again.
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            (attempt,) = await open_sockets(carol, limits.web2)
            extra.append(attempt)
            if await alive(attempt):
                break
            assert asyncio.get_running_loop().time() < deadline, "the killed process's sockets still count"
            await asyncio.sleep(0.5)
        (second,) = await open_sockets(carol, limits.web1)
        extra.append(second)
        assert await alive(second) and await alive(kept)
    finally:
        await close_all(*on_doomed, kept, *extra)


def kill(proc: Proc) -> None:
    """SIGKILL the web process (its server takes its daphne processes with it)."""
    proc.kill()
