"""A client that sends faster than it is served is slowed down, and nothing it sent is lost."""

from __future__ import annotations

import uuid

from tests.support.client import conversation


async def test_a_flood_of_sends_is_taken_in_order_and_answered_in_full(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    direct = conversation(alice, bob)
    sender, receiver = await alice.ws(), await bob.ws()
    try:
        ids = [uuid.uuid4().hex for _ in range(400)]
        # Far more than the server reads ahead (it stops reading the socket meanwhile).
        for client_id in ids:
            await sender.send(
                {
                    "type": "message.send",
                    "conversationId": direct["id"],
                    "content": client_id,
                    "clientMessageId": client_id,
                    "requestId": client_id,
                }
            )
        replies = await sender.wait_for(lambda f: f.get("requestId") in ids, count=len(ids), timeout=120)
        acked = {r["clientMessageId"]: r["message"]["seq"] for r in replies if r["type"] == "message.ack"}
        limited = [r for r in replies if r.get("code") == "rate_limited"]
        assert len(acked) + len(limited) == len(ids)
        # Sent in order, stored in order: the acked ones' seqs follow the order they were sent.
        seqs = [acked[c] for c in ids if c in acked]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # And they reach the other side.
        frames = await receiver.wait_for(lambda f: f.get("type") == "message.new", count=len(acked), timeout=60)
        assert {f["message"]["clientMessageId"] for f in frames} == set(acked)
    finally:
        await sender.close()
        await receiver.close()
