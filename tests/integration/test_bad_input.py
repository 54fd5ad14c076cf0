"""Bad input over the real WebSocket and REST: a clear error, nothing changed."""

import asyncio
import json
import uuid

import pytest
import requests
from websockets.exceptions import InvalidStatus

from tests.support.client import Socket, conversation
from tests.support.stack import message_count

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        ("[1, 2]", "invalid_frame"),
        ('"text"', "invalid_frame"),
        ('{"content": "no type"}', "invalid_frame"),
        ('{"type": 5}', "invalid_frame"),
        ('{"type": "message.explode"}', "unknown_type"),
    ],
)
async def test_malformed_frames_get_errors_and_connection_stays(pair, raw, code):
    _alice, _bob, _direct, socket = pair
    await socket.send(raw)
    error = await socket.wait_type("error")
    assert error["code"] == code and error["detail"]
    assert "Traceback" not in json.dumps(error)
    assert (await socket.request({"type": "ping"}))["type"] == "pong"


@pytest.mark.parametrize(
    "frame",
    [
        {"content": "", "clientMessageId": "c"},
        {"content": "   ", "clientMessageId": "c"},
        {"content": "x" * 4001, "clientMessageId": "c"},
        {"content": ["list"], "clientMessageId": "c"},
        {"content": "ok"},
        {"content": "ok", "clientMessageId": 7},
    ],
)
async def test_invalid_message_send_is_a_validation_error_and_stores_nothing(pair, stack, frame):
    _alice, _bob, direct, socket = pair
    reply = await socket.request({"type": "message.send", "conversationId": direct["id"], **frame})
    assert reply["type"] == "error" and reply["code"] == "validation_error"
    assert message_count(stack, direct["id"]) == 0
    # The control: a valid frame on the same socket is stored, and counted.
    await socket.send_message(direct["id"], "valid")
    assert message_count(stack, direct["id"]) == 1


async def test_someone_elses_conversation_answers_like_an_unknown_one(make_user, stack):
    alice, bob, eve = make_user("alice"), make_user("bob"), make_user("eve")
    direct = conversation(alice, bob)
    socket = await eve.ws()
    try:
        frame = {"type": "message.send", "content": "hi", "clientMessageId": "c"}
        theirs = await socket.request({**frame, "conversationId": direct["id"]})
        unknown = await socket.request({**frame, "conversationId": str(uuid.uuid4())})
        garbage = await socket.request({**frame, "conversationId": "../etc"})
        for reply in (theirs, unknown, garbage):
            reply.pop("requestId")
        assert theirs == unknown == garbage == {"type": "error", "code": "not_found", "detail": "Not found."}
        assert message_count(stack, direct["id"]) == 0
        typing = await socket.request({"type": "typing", "conversationId": direct["id"], "isTyping": True})
        assert typing["code"] == "not_found"
    finally:
        await socket.close()
    rest_theirs = eve.api("GET", f"/api/conversations/{direct['id']}/messages/")
    rest_unknown = eve.api("GET", f"/api/conversations/{uuid.uuid4()}/messages/")
    assert rest_theirs.status_code == rest_unknown.status_code == 404
    assert rest_theirs.json() == rest_unknown.json() == {"code": "not_found", "detail": "Not found."}
    post = eve.api("POST", f"/api/conversations/{direct['id']}/messages/", {"content": "x", "clientMessageId": "c"})
    assert post.status_code == 404
    assert eve.api("GET", f"/api/conversations/{direct['id']}/").status_code == 404
    assert message_count(stack, direct["id"]) == 0
    # The control: the same send by a member is stored, and counted.
    own = alice.api("POST", f"/api/conversations/{direct['id']}/messages/", {"content": "x", "clientMessageId": "c"})
    assert own.status_code == 201, own.text
    assert message_count(stack, direct["id"]) == 1


async def test_oversize_frame_closes_with_1009(pair, stack):
    alice, _bob, direct, socket = pair
    await socket.send(
        json.dumps(
            {"type": "message.send", "conversationId": direct["id"], "content": "x" * 70_000, "clientMessageId": "big"}
        )
    )
    assert await socket.wait_closed() == 1009
    assert message_count(stack, direct["id"]) == 0
    # The control: a message of an allowed size from the same user is stored, and counted.
    again = await alice.ws()
    try:
        await again.send_message(direct["id"], "x" * 4000)
    finally:
        await again.close()
    assert message_count(stack, direct["id"]) == 1


async def test_send_rate_limit(pair, stack):
    _alice, _bob, direct, socket = pair
    ids = [uuid.uuid4().hex for _ in range(80)]
    for client_id in ids:  # as fast as the socket takes them
        await socket.send(
            {
                "type": "message.send",
                "conversationId": direct["id"],
                "content": "spam",
                "clientMessageId": client_id,
                "requestId": client_id,
            }
        )
    replies = await socket.wait_for(lambda f: f.get("requestId") in ids, count=len(ids), timeout=30)
    acks = [r for r in replies if r["type"] == "message.ack"]
    limited = [r for r in replies if r.get("code") == "rate_limited"]
    assert len(acks) + len(limited) == len(ids)
    assert limited, "the burst should have been limited"
    # When to try again: at the configured rate, a token comes back within 1/rate seconds.
    assert all(isinstance(r["retryAfterMs"], int) and 1 <= r["retryAfterMs"] <= 100 for r in limited), limited[:3]
    assert len(acks) >= 30  # the configured burst went through
    assert message_count(stack, direct["id"]) == len(acks)


async def test_unauthenticated_handshakes_are_refused(base, make_user):
    for kwargs in ({"token": None}, {"token": "not-a-token"}, {"token": None, "query": "?token=bogus"}):
        with pytest.raises(InvalidStatus) as refused:
            await Socket.open(base, **kwargs)
        assert refused.value.response.status_code == 403


async def test_token_in_query_string_is_accepted_and_never_logged(base, make_user, stack):
    user = make_user()
    socket = await Socket.open(base, user.token, query=f"?token={user.token}")
    try:
        assert (await socket.request({"type": "ping"}))["type"] == "pong"
    finally:
        await socket.close()
    for proc in stack.procs:
        log = proc.log_path.read_text(errors="replace")
        assert log, f"{proc.name} wrote no log to search"  # the control: the right, written file
        assert user.token not in log, proc.name


async def test_foreign_origin_is_refused(base, make_user):
    user = make_user()
    with pytest.raises(InvalidStatus) as refused:
        await Socket.open(base, user.token, headers={"Origin": "https://evil.example"})
    assert refused.value.response.status_code == 403
    socket = await Socket.open(base, user.token, headers={"Origin": "http://localhost"})
    await socket.close()


def test_rest_requires_authentication(base):
    for path in ("/api/users/me/", "/api/conversations/", "/api/notifications/"):
        response = requests.get(base + path, timeout=10)
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"


def test_rest_bad_bodies_are_json_4xx(make_user, base):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    headers = {"Authorization": f"Token {alice.token}", "Content-Type": "application/json"}
    malformed = requests.post(f"{base}/api/conversations/", data="{oops", headers=headers, timeout=10)
    assert malformed.status_code == 400 and malformed.json()["code"] == "invalid_json"
    cases = [
        ("POST", "/api/conversations/", {"participantIds": "not a list"}),
        ("POST", "/api/conversations/", {"participantIds": []}),
        ("POST", "/api/conversations/", {"participantIds": ["999999999"]}),
        ("POST", "/api/conversations/", {"participantIds": [{"x": 1}]}),
        ("POST", f"/api/conversations/{direct['id']}/messages/", {"content": "", "clientMessageId": "c"}),
        ("POST", f"/api/conversations/{direct['id']}/messages/", {"content": 5}),
        ("POST", f"/api/conversations/{direct['id']}/messages/", ["not", "an", "object"]),
    ]
    for method, path, body in cases:
        response = alice.api(method, path, body)
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["code"] == "validation_error"
    for params in ({"limit": "abc"}, {"limit": 0}, {"limit": 201}, {"after_seq": -1}):
        response = alice.api("GET", f"/api/conversations/{direct['id']}/messages/", **params)
        assert response.status_code == 400 and response.json()["code"] == "validation_error"
    assert alice.api("GET", f"/api/conversations/{direct['id']}/messages/").json() == {"results": []}
    assert requests.get(f"{base}/api/nowhere/", timeout=10).json()["code"] == "not_found"


def test_register_and_token_errors(base, make_user):
    taken = make_user()
    response = requests.post(
        f"{base}/api/auth/register/", json={"username": taken.username, "password": "Zq9-long-pw!"}, timeout=10
    )
    assert response.status_code == 400 and response.json()["code"] == "validation_error"
    weak = requests.post(
        f"{base}/api/auth/register/", json={"username": f"w{uuid.uuid4().hex[:8]}", "password": "123"}, timeout=10
    )
    assert weak.status_code == 400 and weak.json()["code"] == "validation_error"
    bad = requests.post(f"{base}/api/auth/token/", json={"username": taken.username, "password": "wrong"}, timeout=10)
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"
    missing = requests.post(f"{base}/api/auth/token/", json={}, timeout=10)
    assert missing.status_code == 400


def test_schema_is_served(base, make_user):
    user = make_user()
    response = user.api("GET", "/api/schema/", format="json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/conversations/{conversation_id}/messages/" in paths and "/api/auth/register/" in paths


def test_health_endpoints(base):
    assert requests.get(f"{base}/healthz", timeout=10).status_code == 200
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


async def test_concurrent_bad_frames_do_not_disturb_others(pair, make_user):
    _alice, bob, direct, socket = pair
    receiver = await bob.ws()
    try:
        await asyncio.gather(*(socket.send("{bad") for _ in range(20)))
        ack = await socket.send_message(direct["id"], "still fine")
        assert (await receiver.wait_type("message.new"))["message"]["id"] == ack["message"]["id"]
    finally:
        await receiver.close()


def test_rest_send_rate_limit(make_user, stack):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    path = f"/api/conversations/{direct['id']}/messages/"
    statuses = [alice.api("POST", path, {"content": "x", "clientMessageId": f"r{i}"}).status_code for i in range(125)]
    assert statuses.count(201) == 120 and statuses.count(429) == 5  # the default 120 per minute
    limited = alice.api("POST", path, {"content": "x", "clientMessageId": "again"})
    assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
    assert message_count(stack, direct["id"]) == 120
    assert alice.api("GET", path).status_code == 200  # reading is not limited
