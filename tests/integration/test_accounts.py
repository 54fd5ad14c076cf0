"""Accounts over the real server: names unique regardless of case, passwords, token expiry."""

from __future__ import annotations

import uuid

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.support.client import Socket


def register(base: str, username: str, password: str) -> requests.Response:
    return requests.post(f"{base}/api/auth/register/", json={"username": username, "password": password}, timeout=15)


def token(base: str, username: str, password: str) -> requests.Response:
    return requests.post(f"{base}/api/auth/token/", json={"username": username, "password": password}, timeout=15)


def me(base: str, key: str) -> requests.Response:
    return requests.get(f"{base}/api/users/me/", headers={"Authorization": f"Token {key}"}, timeout=15)


def test_usernames_are_unique_regardless_of_case_and_look_alikes_are_refused(base):
    stem = uuid.uuid4().hex[:8]
    password = f"pw-{uuid.uuid4().hex}"
    first = register(base, f"Ann-{stem}", password)
    assert first.status_code == 201, first.text
    for clash in (f"ann-{stem}", f"ANN-{stem}", f"\uff41nn-{stem}"):  # the last: full-width "a", NFKC -> "ann-..."
        refused = register(base, clash, password)
        assert refused.status_code == 400, (clash, refused.text)
        assert refused.json()["code"] == "validation_error"
        assert "taken" in refused.json()["detail"]["username"]
    # A Cyrillic "a" looks the same; names are ASCII, so it is refused as a name, not as a clash.
    cyrillic = register(base, f"\u0430nn-{stem}", password)
    assert cyrillic.status_code == 400 and cyrillic.json()["code"] == "validation_error"
    # Another name registers (the path works); login finds the account in any case.
    assert register(base, f"Bob-{stem}", password).status_code == 201
    for typed in (f"Ann-{stem}", f"ann-{stem}", f"ANN-{stem}"):
        answer = token(base, typed, password)
        assert answer.status_code == 200, answer.text
        assert me(base, answer.json()["token"]).json() == {
            "id": first.json()["id"],
            "username": f"Ann-{stem}",
            "displayName": "",
            "online": False,
            "lastSeenAt": None,
        }


def test_a_password_of_only_whitespace_is_refused(base):
    refused = register(base, f"ws-{uuid.uuid4().hex[:8]}", " " * 10)
    assert refused.status_code == 400 and refused.json()["code"] == "validation_error"
    assert "whitespace" in str(refused.json()["detail"])
    tabs = register(base, f"ws-{uuid.uuid4().hex[:8]}", "\t \u3000 \n" * 3)
    assert tabs.status_code == 400 and tabs.json()["code"] == "validation_error"
    # Spaces inside a real password are fine.
    assert register(base, f"ws-{uuid.uuid4().hex[:8]}", "  a long pass phrase  ").status_code == 201


async def test_an_expired_token_is_refused_on_rest_and_websocket_until_renewed(stack, base):
    username, password = f"exp-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    assert register(base, username, password).status_code == 201
    issued = token(base, username, password).json()
    old = issued["token"]
    assert issued["expiresAt"].endswith("Z")
    # Control: the fresh token works on both transports.
    assert me(base, old).status_code == 200
    socket = await Socket.open(base, old)
    assert (await socket.request({"type": "ping"}))["type"] == "pong"
    await socket.close()

    # Issued eight days ago: past the default CHAT_TOKEN_TTL_SECONDS (7 days).
    stack.query("UPDATE authtoken_token SET created = created - interval '8 days' WHERE key = %s RETURNING key", old)
    expired = me(base, old)
    assert expired.status_code == 401
    assert expired.json()["code"] == "token_expired"
    with pytest.raises(InvalidStatus) as refused:
        await Socket.open(base, old)
    assert refused.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        await Socket.open(base, None, query=f"?token={old}")

    # The client renews by asking for a token again: a new one, which works.
    renewed = token(base, username, password)
    assert renewed.status_code == 200
    new = renewed.json()["token"]
    assert new != old
    assert me(base, new).status_code == 200
    assert me(base, old).status_code == 401
    socket = await Socket.open(base, new)
    assert (await socket.request({"type": "ping"}))["type"] == "pong"
    await socket.close()
