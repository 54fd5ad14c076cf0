"""Reconnecting: many sockets at once, session-cookie sockets, and presence kept by each process's heartbeat."""

import asyncio
import json
import time
import uuid

import pytest
import redis
import requests
from websockets.exceptions import InvalidStatus

from tests.support.client import Socket, conversation
from tests.support.stack import Stack, require_env

pytestmark = pytest.mark.integration


def create_users_with_tokens(stack: Stack, count: int) -> list[tuple[str, str]]:
    """Create users with tokens in the stack's database at once; return (id, token) pairs."""
    code = (
        "import json, uuid\n"
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        "User = get_user_model()\n"
        f"names = [f'crowd-{{uuid.uuid4().hex[:12]}}' for _ in range({count})]\n"
        "users = User.objects.bulk_create([User(username=name) for name in names])\n"
        "tokens = Token.objects.bulk_create([Token(key=Token.generate_key(), user=u) for u in users])\n"
        "print(json.dumps([[str(t.user.pk), t.key] for t in tokens]))\n"
    )
    return [tuple(pair) for pair in json.loads(stack.manage("shell", "-c", code).strip().splitlines()[-1])]


async def test_a_crowd_reconnecting_at_once_all_get_sync_done(stack, base, make_user):
    crowd = await asyncio.to_thread(create_users_with_tokens, stack, 150)
    sender, waiting = make_user("sender"), make_user("waiting")
    direct = conversation(sender, waiting)
    away = {"content": "while away", "clientMessageId": "w1"}
    assert sender.api("POST", f"/api/conversations/{direct['id']}/messages/", away).status_code == 201

    async def reconnect(token):
        socket = await Socket.open(base, token)
        done = await socket.request({"type": "sync"}, timeout=60)
        return socket, done

    results = await asyncio.gather(*(reconnect(token) for _id, token in [*crowd, (waiting.id, waiting.token)]))
    try:
        assert all(done["type"] == "sync.done" for _socket, done in results)
        assert [done["count"] for _socket, done in results[:-1]] == [0] * len(crowd)
        waiting_socket, waiting_done = results[-1]
        assert waiting_done["count"] == 1
        assert waiting_socket.of_type("message.new")[0]["message"]["content"] == "while away"
    finally:
        await asyncio.gather(*(socket.close() for socket, _done in results))


def log_in_to_admin(stack: Stack, base: str) -> requests.Session:
    """Log a staff user in through the admin's login page; return the session holding its cookie."""
    username, password = f"staff-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_user({username!r}, password={password!r}, is_staff=True)",
    )
    session = requests.Session()
    session.get(f"{base}/admin/login/", timeout=10)
    response = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "next": "/admin/",
        },
        timeout=10,
    )
    assert response.status_code == 200 and "sessionid" in session.cookies, response.text[:300]
    return session


async def test_the_web_page_connects_with_its_session_and_a_token_still_wins(stack, base):
    session = log_in_to_admin(stack, base)
    page = {"Cookie": f"sessionid={session.cookies['sessionid']}", "Origin": "http://127.0.0.1"}
    socket = await Socket.open(base, None, headers=page)
    try:
        assert (await socket.request({"type": "ping"}))["type"] == "pong"
    finally:
        await socket.close()
    with pytest.raises(InvalidStatus) as refused:
        await Socket.open(base, "not-a-token", headers=page)
    assert refused.value.response.status_code == 403


@pytest.fixture(scope="module")
def short_ttl_stack():
    stack = Stack.create("presence", CHAT_PRESENCE_TTL_SECONDS="1.5")
    try:
        stack.web, stack.base = stack.start_web()  # type: ignore[attr-defined]
        yield stack
    finally:
        stack.stop()


def online(stack: Stack, user_id: str) -> bool:
    """Whether the user counts as online, read from Redis as the bridge reads it."""
    client = redis.Redis.from_url(require_env("REDIS_URL"))
    try:
        return client.zcount(f"chat-{stack.name}:presence:{user_id}", time.time() - 1.5, "+inf") > 0
    finally:
        client.close()


async def test_a_process_keeps_its_sockets_online_and_they_age_out_when_it_dies(short_ttl_stack):
    stack = short_ttl_stack
    (ann_id, ann_token), (ben_id, ben_token) = await asyncio.to_thread(create_users_with_tokens, stack, 2)
    sockets = [await Socket.open(stack.base, token) for token in (ann_token, ann_token, ben_token)]
    await asyncio.sleep(4.0)  # well past the TTL: only the process's heartbeat keeps them
    assert online(stack, ann_id) and online(stack, ben_id)
    await sockets[0].close()
    await asyncio.sleep(0.3)
    assert online(stack, ann_id)  # until the last socket closes
    await sockets[1].close()
    await asyncio.sleep(0.3)
    assert not online(stack, ann_id)
    stack.web.kill()  # no heartbeat, no close: ben's socket must age out
    await asyncio.sleep(2.0)
    assert not online(stack, ben_id)
    await sockets[2].close()
