"""A socket is written each message once: its sent seqs, and the fan-out and redelivery that consult them."""

import uuid

import pytest

from messaging.realtime import LocalSockets, encode_frame
from messaging.repeats import MAX_RANGES, SentSeqs, seq_key

C, D = str(uuid.uuid4()), str(uuid.uuid4())


def test_a_seq_is_new_once_and_ranges_join_around_it():
    sent = SentSeqs()
    assert [sent.first(C, seq) for seq in (1, 2, 3)] == [True, True, True]
    assert sent.first(C, 2) is False and sent.first(C, 1) is False
    assert sent.ranges(C) == [(1, 3)]
    # Out of order: a gap stays open until its seq comes, then the ranges join.
    assert sent.first(C, 6) and sent.first(C, 5)
    assert sent.ranges(C) == [(1, 3), (5, 6)]
    assert sent.first(C, 4)
    assert sent.ranges(C) == [(1, 6)]
    assert sent.first(C, 4) is False
    # Conversations are apart: the same seq elsewhere is another message.
    assert sent.first(D, 4) is True
    assert sent.ranges(D) == [(4, 4)]


def test_a_socket_that_joined_late_starts_where_it_joined():
    sent = SentSeqs()
    assert all(sent.first(C, seq) for seq in range(500, 510))
    assert sent.ranges(C) == [(500, 509)]
    assert sent.first(C, 499) and sent.ranges(C) == [(499, 509)]


def test_memory_is_bounded_by_forgetting_the_lowest_ranges_which_can_only_let_a_repeat_through():
    sent = SentSeqs()
    for seq in range(0, 2 * (MAX_RANGES + 10), 2):  # every other seq: a range each
        assert sent.first(C, seq)
    ranges = sent.ranges(C)
    assert len(ranges) == MAX_RANGES and ranges[-1] == (2 * (MAX_RANGES + 9),) * 2
    assert sent.first(C, 0) is True  # forgotten: let through again
    assert sent.first(C, ranges[-1][0]) is False  # remembered: held back


def test_only_message_new_frames_have_a_key():
    message = {"conversationId": C, "seq": 7}
    assert seq_key({"type": "message.new", "message": message}) == (C, 7)
    assert seq_key({"type": "message.status", "conversationId": C, "upToSeq": 7}) is None
    assert seq_key({"type": "typing", "conversationId": C}) is None


class FakeSocket:
    def __init__(self, name: str) -> None:
        self.channel_name = name
        self.sent = SentSeqs()
        self.texts: list[str] = []

    async def send_text(self, text: str) -> None:
        self.texts.append(text)


@pytest.fixture
def sockets():
    registry = LocalSockets()
    phone, laptop, other = FakeSocket("phone"), FakeSocket("laptop"), FakeSocket("other")
    registry.by_user["1"].update(phone=phone, laptop=laptop)
    registry.by_user["2"]["other"] = other
    return registry, phone, laptop, other


def new(seq: int) -> tuple[str, tuple[str, int]]:
    frame = {"type": "message.new", "message": {"conversationId": C, "seq": seq}}
    return encode_frame(frame), (C, seq)


async def test_a_record_delivered_again_reaches_each_socket_once_and_other_frames_always_go(sockets):
    registry, phone, laptop, other = sockets
    first, key = new(1)
    status = encode_frame({"type": "message.status", "conversationId": C, "upToSeq": 1})
    pushes = [[["1", "2"], first, None], [["1"], status, None]]
    await registry.deliver(pushes, [list(key), None])
    # The bridge handles the record again (a lost commit): the message is held back, the status frame is not.
    await registry.deliver(pushes, [list(key), None])
    assert phone.texts == laptop.texts == [first, status, status]
    assert other.texts == [first]


async def test_what_a_socket_got_by_sync_or_ack_is_not_sent_again_but_the_rest_is(sockets):
    registry, phone, laptop, _other = sockets
    phone.sent.first(C, 1)  # in a sync batch, or its own message's ack
    text, key = new(1)
    assert await registry.send("1", text, key=key) == 1
    assert phone.texts == [] and laptop.texts == [text]
    # Redelivery of a message neither socket has: both get it once.
    text2, key2 = new(2)
    assert await registry.send("1", text2, key=key2) == 2
    assert await registry.send("1", text2, key=key2) == 0
    assert phone.texts == [text2] and laptop.texts == [text, text2]


async def test_pushes_from_a_bridge_without_keys_all_go(sockets):
    registry, phone, _laptop, _other = sockets
    text, _key = new(1)
    await registry.deliver([[["1"], text, "laptop"]])
    await registry.deliver([[["1"], text, "laptop"]])
    assert phone.texts == [text, text]


def test_a_confirmation_joins_the_ranges_below_it_up_to_the_highest_seq_sent():
    sent = SentSeqs()
    for seq in (5, 9, *range(12, 21)):  # a sender's own acked messages, and others' that came live
        sent.first(C, seq)
    sent.confirmed(C, 10)
    assert sent.ranges(C) == [(1, 10), (12, 20)]
    assert sent.first(C, 7) is False  # held, by the client's word: a late copy is a repeat
    sent.confirmed(C, 11)
    assert sent.ranges(C) == [(1, 20)]
    # A confirmation past what the socket was sent (the server clamps it) holds nothing back that never came.
    sent.confirmed(C, 1_000)
    assert sent.ranges(C) == [(1, 20)] and sent.first(C, 21) is True
    # Nor does one for a conversation the socket was sent nothing of.
    sent.confirmed(D, 50)
    assert sent.ranges(D) == [] and sent.first(D, 3) is True
