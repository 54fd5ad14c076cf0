"""Disaster recovery through the real parts: a backup restored into a new database, and messages republished.

Backup and restore: messages sent through daphne, Kafka and the bridge are
backed up by scripts/backup.sh (make backup); the database is dropped with
the processes stopped; the backup goes into an empty database (after the
refusals that protect a database with tables and a damaged copy), the
processes start again, and the conversation goes on: every message there
once, seq continuing without a gap, watermarks as they were.

Republish: manage.py republish produces a conversation's messages again;
a consumer of chat-messages with a group of its own reads them with the
ids and payloads of the first records, twice the same. The bridge of this
service does not show them to clients or notify anyone again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.support.client import Socket, User, conversation, register
from tests.support.stack import ROOT, Stack, recreate_database, require_env
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

TOPIC = "chat-messages"


def backup_script(stack: Stack, backups: Path, *args: str) -> subprocess.CompletedProcess:
    """Run scripts/backup.sh against the stack's database, as `make backup` / `make restore` do."""
    env = {**os.environ, "DATABASE_URL": stack.database_url, "DJANGO_ENV_FILE": "/dev/null", "BACKUP_DIR": str(backups)}
    return subprocess.run(["scripts/backup.sh", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def table_count(stack: Stack) -> int:
    return stack.query("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")[0][0]


def watermarks(stack: Stack, conversation_id: str) -> dict[int, tuple[int, int]]:
    rows = stack.query(
        "SELECT user_id, delivered_seq, last_read_seq FROM messaging_participant WHERE conversation_id = %s",
        conversation_id,
    )
    return {user_id: (delivered, read) for user_id, delivered, read in rows}


def stored_messages(stack: Stack, conversation_id: str) -> list[tuple[str, int, str]]:
    rows = stack.query(
        "SELECT id, seq, content FROM messaging_message WHERE conversation_id = %s ORDER BY seq", conversation_id
    )
    return [(str(message_id), seq, content) for message_id, seq, content in rows]


async def confirm(socket: Socket, conversation_id: str, delivered: int, read: int) -> None:
    await socket.send({"type": "message.received", "conversationId": conversation_id, "upToSeq": delivered})
    await socket.send({"type": "message.read", "conversationId": conversation_id, "upToSeq": read})


async def test_a_backup_restored_into_a_new_database_carries_the_conversation_on(tmp_path: Path):
    stack = Stack.create("recovery")
    try:
        stack.start_bridge()
        _web, base = stack.start_web()
        alice, bob = register(base, "alice"), register(base, "bob")
        direct = conversation(alice, bob)
        conversation_id = direct["id"]
        a, b = await alice.ws(), await bob.ws()
        try:
            for sender, content in ((a, "one"), (b, "two"), (a, "three"), (a, "four"), (b, "five")):
                await sender.send_message(conversation_id, content)
            await b.wait_for(lambda f: f.get("type") == "message.new", count=3)
            await a.wait_for(lambda f: f.get("type") == "message.new", count=2)
            await confirm(a, conversation_id, delivered=5, read=4)
            await confirm(b, conversation_id, delivered=5, read=3)
            marks = {int(alice.id): (5, 4), int(bob.id): (5, 3)}
            wait_until(lambda: watermarks(stack, conversation_id) == marks, what="the watermarks were not stored")
        finally:
            await a.close()
            await b.close()
        # Acknowledged records leave the outbox at once; one left would go again after the restore.
        wait_until(lambda: stack.query("SELECT count(*) FROM kafka_bridge_outboxrecord")[0][0] == 0)
        before = stored_messages(stack, conversation_id)
        assert [seq for _id, seq, _content in before] == [1, 2, 3, 4, 5]

        made = backup_script(stack, tmp_path, "create")
        assert made.returncode == 0, made.stderr
        dump = Path(made.stdout.strip())
        manifest = json.loads(dump.with_suffix(".json").read_text())
        assert manifest["tables"]["messaging_message"] == 5
        assert manifest["conversations"]["last_seq_sum"] == 5
        assert manifest["migrations"]["messaging"].startswith("0")

        # Into a database with tables: refused, nothing changed.
        refused = backup_script(stack, tmp_path, "restore", str(dump))
        assert refused.returncode == 1
        assert "is not empty" in refused.stderr and "restored only into an empty database" in refused.stderr
        assert stored_messages(stack, conversation_id) == before

        # The disaster: the processes stop, the database is gone. An empty one takes its place.
        stack.stop()
        recreate_database(require_env("DATABASE_URL"), "chat_recovery")
        assert table_count(stack) == 0

        # A damaged copy is refused before anything is touched.
        damaged = tmp_path / "damaged" / dump.name
        damaged.parent.mkdir()
        data = bytearray(dump.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte
        damaged.write_bytes(bytes(data))
        damaged.with_suffix(".json").write_text(dump.with_suffix(".json").read_text())
        refused = backup_script(stack, tmp_path, "restore", str(damaged))
        assert refused.returncode == 1 and "a damaged copy; nothing restored" in refused.stderr
        assert table_count(stack) == 0

        restored = backup_script(stack, tmp_path, "restore", str(dump))
        assert restored.returncode == 0, restored.stderr
        assert "match the manifest" in restored.stderr
        assert stored_messages(stack, conversation_id) == before
        assert watermarks(stack, conversation_id) == marks

        # The system starts again on the restored database; tokens, members and watermarks are there.
        stack.start_bridge()
        _web, base = stack.start_web()
        alice, bob = dataclasses.replace(alice, base=base), dataclasses.replace(bob, base=base)
        a, b = await alice.ws(), await bob.ws()
        try:
            synced = await b.request({"type": "sync"})
            assert synced["type"] == "sync.done" and synced["count"] == 0  # bob holds everything up to seq 5
            ack = await a.send_message(conversation_id, "six")
            assert ack["message"]["seq"] == 6
            live = await b.wait_type("message.new")
            assert live["message"]["id"] == ack["message"]["id"]
        finally:
            await a.close()
            await b.close()
        after = stored_messages(stack, conversation_id)
        assert after[:5] == before and [seq for _id, seq, _content in after] == [1, 2, 3, 4, 5, 6]
        assert len({message_id for message_id, _seq, _content in after}) == 6
        history = alice.api("GET", f"/api/conversations/{conversation_id}/messages/").json()["results"]
        assert [m["seq"] for m in history] == [1, 2, 3, 4, 5, 6]
    finally:
        stack.stop()


def consumer_at_end(group: str) -> Consumer:
    """A consumer of chat-messages in a group of its own, assigned at the topic's current end."""
    consumer = Consumer(
        {"bootstrap.servers": require_env("KAFKA_BOOTSTRAP_SERVERS"), "group.id": group, "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
    ends = [
        TopicPartition(TOPIC, p, consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1])
        for p in partitions
    ]
    consumer.assign(ends)
    return consumer


def read_records(consumer: Consumer, conversation_id: str, count: int, timeout: float = 30.0) -> list[tuple]:
    """Return (message id, payload, headers) of the next `count` records of the conversation."""
    records: list[tuple] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        payload = json.loads(msg.value())
        if payload["conversationId"] == conversation_id:
            headers = {k: v.decode() for k, v in msg.headers() or []}
            records.append((payload["messageId"], payload, headers))
    assert len(records) == count, f"wanted {count} records, got {len(records)}"
    return records


async def test_republished_messages_keep_their_ids_and_payloads_and_clients_are_not_told_again(stack, make_user):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    group = conversation(alice, bob, carol, title="republished")
    consumer = consumer_at_end(f"republish-check-{uuid.uuid4().hex}")
    a, b = await alice.ws(), await bob.ws()  # carol is offline: she is notified
    try:
        sent = [(await a.send_message(group["id"], f"message {n}"))["message"]["id"] for n in range(3)]
        await b.wait_for(lambda f: f.get("type") == "message.new", count=3)
        await b.send({"type": "message.received", "conversationId": group["id"], "upToSeq": 3})
        first = read_records(consumer, group["id"], 3)
        assert [message_id for message_id, _payload, _headers in first] == sent
        title = f"3 new messages from {alice.username}"
        (notification,) = wait_until(
            lambda: [n for n in unread(carol) if n["title"] == title], what="carol was not notified"
        )
        assert carol.api("POST", f"/api/notifications/{notification['id']}/read/").status_code == 204

        for _run in range(2):
            said = stack.manage("republish", "--conversation", group["id"])
            assert said.startswith("Republished 3 record(s) of 1 conversation(s) to chat-messages")
        again = read_records(consumer, group["id"], 6)
        assert [message_id for message_id, _payload, _headers in again] == sent + sent
        originals = {message_id: payload for message_id, payload, _headers in first}
        for message_id, payload, headers in again:
            assert payload == originals[message_id]
            assert headers == {"producer": "chat-backend", "republished": "1"}

        # The bridge's loops have taken every record, republished ones included...
        stack.wait_loop_caught_up("chat-messages")
        stack.wait_loop_caught_up("offline-notifications")
        assert unread(carol) == []  # ...and notified nobody again...
        # ...nor showed them again: bob gets the next message live after the first three only (one partition, in order).
        fourth = (await a.send_message(group["id"], "message 3"))["message"]["id"]
        (live,) = await b.wait_for(lambda f: f.get("type") == "message.new" and f["message"]["id"] == fourth)
        assert live["message"]["seq"] == 4
        (notified,) = wait_until(lambda: unread(carol), what="carol was not notified of the new message")
        assert notified["title"] == f"New message from {alice.username}"
        assert notified["relatedEntityId"] == fourth
        assert [f["message"]["seq"] for f in b.of_type("message.new")] == [1, 2, 3, 4]
    finally:
        consumer.close()
        await a.close()
        await b.close()


def unread(user: User) -> list[dict]:
    return user.api("GET", "/api/notifications/", unread="true").json()["results"]
