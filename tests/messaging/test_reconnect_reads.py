"""The reads of a reconnect, asked for by many sockets at once: tokens and whether anything is pending."""

import asyncio
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework.authtoken.models import Token

from chat_project import ws_auth
from messaging import pending, selectors, services

User = get_user_model()


@pytest.fixture
def people(transactional_db):
    a, b, c = (User.objects.create_user(username=f"{n}-{uuid.uuid4().hex[:6]}") for n in ("ann", "ben", "cat"))
    direct, _ = services.conversation_create(creator=a, participant_ids=[b.pk])
    services.message_send(sender=a, conversation_id=direct.pk, content="hi", client_message_id="1")
    return a, b, c


def test_users_with_pending_names_only_users_below_their_last_seq(people):
    a, b, c = people
    # Ann's own message counts too: her other devices need it to confirm a contiguous run.
    assert selectors.users_with_pending([a.pk, str(b.pk), c.pk]) == {str(a.pk), str(b.pk)}
    (message,), _more = selectors.messages_pending_for_user(user=b, limit=10)
    services.conversation_mark_received(user=b, conversation_id=message.conversation_id, up_to_seq=message.seq)
    services.conversation_mark_received(user=a, conversation_id=message.conversation_id, up_to_seq=message.seq)
    assert selectors.users_with_pending([a.pk, b.pk, c.pk]) == set()


def test_tokens_of_active_users_only(people):
    a, b, _c = people
    keys = [Token.objects.create(user=u).key for u in (a, b)]
    User.objects.filter(pk=b.pk).update(is_active=False)
    found = ws_auth.users_for_tokens([*keys, "unknown"])
    assert {key: user.pk for key, (user, _expires_at) in found.items()} == {keys[0]: a.pk}


async def test_sockets_syncing_at_once_share_one_pending_check(people, monkeypatch):
    a, b, c = people
    calls = []
    original = selectors.users_with_pending

    def counting(user_ids):
        calls.append(len(user_ids))
        return original(user_ids)

    monkeypatch.setattr(selectors, "users_with_pending", counting)
    results = await asyncio.gather(*(pending.messages_pending(user, 10) for user in (a, b, c, a, c)))
    assert calls == [5]
    assert [len(messages) for messages, _more, _tails in results] == [1, 1, 0, 1, 0]
    assert results[1][0][0]["content"] == "hi"
    assert [t["lastSeq"] for t in results[1][2]] == [1]


async def test_handshakes_at_once_share_one_token_lookup(people, monkeypatch):
    a, b, _c = people
    keys = [await asyncio.to_thread(lambda u=u: Token.objects.create(user=u).key) for u in (a, b)]
    calls = []
    original = ws_auth.users_for_tokens

    def counting(tokens):
        calls.append(len(tokens))
        return original(tokens)

    monkeypatch.setattr(ws_auth, "users_for_tokens", counting)
    users = await asyncio.gather(*(ws_auth.user_for_token(key) for key in (*keys, "bogus")))
    assert calls == [3]
    assert [u.pk for u, _expires_at in users[:2]] == [a.pk, b.pk]
    assert isinstance(users[2][0], AnonymousUser) and users[2][1] is None
