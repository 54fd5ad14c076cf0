"""Hostile input over the real WebSocket and REST: strings that cannot be stored or echoed,
JSON nested past the parser's depth, unknown WebSocket paths and foreign hosts.

Each is refused with the contract's error and changes nothing; each test also
shows the same path working with clean input.
"""

import json

import pytest
import requests
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support.client import conversation
from tests.support.stack import message_count

pytestmark = pytest.mark.integration

# JSON escapes of a lone surrogate and of NUL: valid JSON, but no valid text.
SURROGATE = "\\ud800"
NUL = "\\u0000"
DEEP = "[" * 3000 + "]" * 3000


def tracebacks(stack):
    return sum(proc.log_path.read_text(errors="replace").count("Traceback") for proc in stack.procs)


async def test_a_lone_surrogate_in_any_field_is_a_validation_error(pair, stack):
    _alice, _bob, direct, socket = pair
    before = tracebacks(stack)
    await socket.send('{"type": "ping", "requestId": "' + SURROGATE + '"}')
    error = await socket.wait_type("error")
    assert error == {
        "type": "error",
        "requestId": None,
        "code": "validation_error",
        "detail": "Text must be valid Unicode without NUL characters.",
    }
    conversation_id = direct["id"]
    cases = [(f"a{SURROGATE}b", "c1"), (f"a{NUL}b", "c2"), ("ok", f"c{SURROGATE}"), ("ok", f"c{NUL}")]
    for number, (content, client_message_id) in enumerate(cases):
        await socket.send(
            f'{{"type": "message.send", "requestId": "r{number}", "conversationId": "{conversation_id}", '
            f'"content": "{content}", "clientMessageId": "{client_message_id}"}}'
        )
        # The error answers the request it refuses.
        reply = await socket.wait_type("error", requestId=f"r{number}")
        assert reply["code"] == "validation_error", reply
    assert message_count(stack, conversation_id) == 0
    # The socket is still open, and clean text with escapes is stored.
    ack = await socket.send_message(conversation_id, "caf\u00e9 \U0001f600", "clean")
    assert ack["type"] == "message.ack" and ack["message"]["content"] == "caf\u00e9 \U0001f600"
    assert message_count(stack, conversation_id) == 1
    assert tracebacks(stack) == before


def test_rest_refuses_deep_json_and_unstorable_text(make_user, base, stack):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    before = tracebacks(stack)
    json_headers = {"Content-Type": "application/json"}
    for path, headers in (
        ("/api/auth/token/", json_headers),
        ("/api/auth/register/", json_headers),
        ("/api/conversations/", {**json_headers, "Authorization": f"Token {alice.token}"}),
    ):
        response = requests.post(base + path, data=DEEP, headers=headers, timeout=10)
        assert response.status_code == 400, (path, response.text)
        assert response.json()["code"] == "invalid_json"
    messages = f"{base}/api/conversations/{direct['id']}/messages/"
    auth = {**json_headers, "Authorization": f"Token {alice.token}"}
    for body in (
        '{"content": "a' + NUL + 'b", "clientMessageId": "c1"}',
        '{"content": "a' + SURROGATE + 'b", "clientMessageId": "c2"}',
        '{"content": "ok", "clientMessageId": "' + SURROGATE + '"}',
    ):
        response = requests.post(messages, data=body, headers=auth, timeout=10)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["code"] == "validation_error"
    assert message_count(stack, direct["id"]) == 0
    # The same endpoints answer clean bodies: registering and getting a token.
    assert make_user("carol").token
    sent = requests.post(messages, data='{"content": "caf\\u00e9", "clientMessageId": "c3"}', headers=auth, timeout=10)
    assert sent.status_code == 201 and sent.json()["content"] == "caf\u00e9"
    assert message_count(stack, direct["id"]) == 1
    assert tracebacks(stack) == before


def test_rest_takes_only_strings_as_text_like_the_websocket(make_user, stack):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    path = f"/api/conversations/{direct['id']}/messages/"
    for body in ({"content": 5, "clientMessageId": "c5"}, {"content": "5", "clientMessageId": 5}):
        response = alice.api("POST", path, body)
        assert response.status_code == 400 and response.json()["code"] == "validation_error", body
    assert message_count(stack, direct["id"]) == 0
    response = alice.api("POST", path, {"content": "5", "clientMessageId": "c5"})
    assert response.status_code == 201 and response.json()["content"] == "5"
    group = alice.api("POST", "/api/conversations/", {"participantIds": [bob.id], "title": 5})
    assert group.status_code == 400 and group.json()["code"] == "validation_error"


async def test_unknown_websocket_paths_are_refused_cleanly(base, make_user, stack):
    user = make_user()
    before = tracebacks(stack)
    ws_base = base.replace("http://", "ws://")
    headers = {"Authorization": f"Token {user.token}"}
    for path in ("/ws/nope/", "/ws/chat", "/", "/ws/chat/extra/"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_base + path, additional_headers=headers, open_timeout=15)
        assert refused.value.response.status_code in (403, 404), path
    # The chat path itself accepts the same user.
    conn = await connect(ws_base + "/ws/chat/", additional_headers=headers, open_timeout=15)
    await conn.send(json.dumps({"type": "ping", "requestId": 1}))
    assert json.loads(await conn.recv()) == {"type": "pong", "requestId": 1}
    await conn.close()
    assert tracebacks(stack) == before


def test_a_foreign_host_gets_the_json_error_shape(base, make_user):
    user = make_user()
    auth = {"Authorization": f"Token {user.token}"}
    foreign = requests.get(f"{base}/api/users/me/", headers={**auth, "Host": "evil.example"}, timeout=10)
    assert foreign.status_code == 400
    assert foreign.headers["Content-Type"].startswith("application/json")
    assert foreign.json() == {"code": "bad_request", "detail": "Bad request."}
    own = requests.get(f"{base}/api/users/me/", headers=auth, timeout=10)
    assert own.status_code == 200 and own.json()["id"] == str(user.id)
