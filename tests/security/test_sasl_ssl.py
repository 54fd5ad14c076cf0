"""The system on a secured broker: SASL_SSL as a user whose ACLs allow its own topics and groups only,
and Redis with a password.

The whole path, a bridge killed mid-burst, clients refused (a wrong password,
a user without ACLs, a wrong Redis password) with a line that says why and a
/readyz that names what fails, and no password in any log.
"""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
import requests
from confluent_kafka.admin import AdminClient, ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from tests.faults.burst import Burst
from tests.support.client import conversation, register
from tests.support.stack import LOG_DIR, Proc, Stack
from tests.support.waiting import wait_until

from .conftest import Secured

pytestmark = [pytest.mark.integration, pytest.mark.security]

# A fresh message must reach every receiver live within this many seconds after recovery (as in tests/faults).
LIVE_WITHIN_S = 20.0


def readyz(base: str) -> tuple[int, dict]:
    answer = requests.get(f"{base}/readyz", timeout=15)
    return answer.status_code, answer.json()


def add_scram_user(admin_config: dict[str, str], name: str, password: str) -> None:
    """Add a Kafka user (no ACL allows it anything), as the broker's super user."""
    upsert = UserScramCredentialUpsertion(
        name, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password.encode()
    )
    admin = AdminClient(admin_config)  # kept until the answer came: its futures fail once it is collected
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)


async def test_a_message_goes_the_whole_way_over_sasl_ssl_and_a_redis_with_a_password(secured_stack: Stack):
    base = secured_stack.base  # type: ignore[attr-defined]
    alice, bob = register(base, "alice"), register(base, "bob")
    direct = conversation(alice, bob)
    a, b = await alice.ws(), await bob.ws()
    try:
        ack = await a.send_message(direct["id"], "over TLS, as the service's user")
        assert ack["message"]["status"] == "SENT"
        new = await b.wait_type("message.new")
        assert new["message"] == ack["message"]
        # Bob reads it: the status goes back to Alice through Kafka too (message-status-events).
        await b.send({"type": "message.read", "conversationId": direct["id"], "upToSeq": 1})
        status = await a.wait_type("message.status", status="READ")
        assert status["messageId"] == ack["message"]["id"]
    finally:
        await a.close()
        await b.close()
    # The bridge handled and committed the record, in its group under the service's prefix.
    secured_stack.wait_loop_caught_up("chat-messages", timeout=30)
    # The operators' commands read the broker as the service's user too: topics, configs, groups, dead letters.
    report = json.loads(secured_stack.manage("kafka_status", "--json"))
    assert report["reachable"] and report["missingTopics"] == [], report
    assert report["groups"] and not any(group["error"] for group in report["groups"]), report["groups"]
    assert all(topic["retentionMs"] for topic in report["topics"]), report["topics"]
    assert "0 dead letter(s) in chat-messages.DLT" in secured_stack.manage("dead_letters", "list", "chat-messages")


async def test_wrong_passwords_and_a_user_without_acls_are_refused_and_readyz_names_what_fails(
    secured: Secured, secured_stack: Stack
):
    # The control: the stack's own web, as the service's user with its passwords, is ready.
    assert readyz(secured_stack.base)[0] == 200  # type: ignore[attr-defined]
    stranger = secrets.token_hex(16)
    secured.test_passwords["stranger"] = stranger
    add_scram_user(secured.admin_config, "stranger", stranger)
    stranger_env = {"KAFKA_SASL_USERNAME": "stranger", "KAFKA_SASL_PASSWORD": stranger}
    wrong_passwords = {
        "KAFKA_SASL_PASSWORD": secrets.token_hex(32),
        "REDIS_URL": secured.redis_url.replace(secured.redis_password, secrets.token_hex(16)),
    }
    refused: list[Proc] = []
    try:
        # Side by side: each takes seconds to come up.
        (wrong, wrong_base), (without_acls, without_acls_base), bridge_without_acls = await asyncio.gather(
            asyncio.to_thread(secured_stack.start_web, env=wrong_passwords, ready=False),
            asyncio.to_thread(secured_stack.start_web, env=stranger_env, ready=False),
            asyncio.to_thread(secured_stack.start_bridge, env=stranger_env),
        )
        refused = [wrong, without_acls, bridge_without_acls]

        # Each web answers 503, naming what refused it and nothing else.
        status, body = readyz(wrong_base)
        assert status == 503 and set(body["failing"]) == {"kafka", "channel_layer"}, body
        status, body = readyz(without_acls_base)
        assert status == 503 and set(body["failing"]) == {"kafka"}, body
        # And each says why, in a line an operator can act on.
        wait_until(
            lambda: "Authentication failed" in wrong.log() and "invalid credentials" in wrong.log(),
            30,
            f"no line about the refused Kafka password:\n{wrong.log_tail()}",
        )
        assert "Readiness check channel_layer failed: auth:AuthenticationError" in wrong.log()
        assert "KafkaTopicsUnavailable('chat-messages: Broker: Topic authorization failed" in without_acls.log()
        # A bridge without ACLs gets no partition, says so, and is not ready either.
        wait_until(
            lambda: "GROUP_AUTHORIZATION_FAILED" in bridge_without_acls.log(),
            30,
            f"the bridge did not say it was refused:\n{bridge_without_acls.log_tail()}",
        )
        status, body = readyz(bridge_without_acls.http)
        assert status == 503 and all(reason.startswith("holds no partition") for reason in body["failing"].values())
    finally:
        for proc in refused:
            proc.terminate()
    # Still the control: nothing of this disturbed the service's own web.
    assert readyz(secured_stack.base)[0] == 200  # type: ignore[attr-defined]


async def test_a_bridge_killed_mid_burst_over_sasl_ssl_loses_nothing(secured_stack: Stack, report):
    stack = secured_stack
    burst = Burst.prepare(stack, stack.base, senders=4, per_sender=75)  # type: ignore[attr-defined]
    await burst.start_receivers()
    sending = asyncio.create_task(burst.send_all())
    await burst.wait_sent(90)
    stack.bridge.kill()  # type: ignore[attr-defined]  # SIGKILL: no commit, no goodbye
    await burst.wait_sent(180)
    stack.bridge = stack.start_bridge()  # type: ignore[attr-defined]
    await sending
    done = await burst.wait_delivered(live_within=LIVE_WITHIN_S)
    report({**burst.verify(), "delivered s after last ack": round(done, 1)})


async def test_no_password_reaches_a_log(secured: Secured, secured_stack: Stack):
    # Something to log first: a message through the whole system.
    base = secured_stack.base  # type: ignore[attr-defined]
    alice, bob = register(base, "alice"), register(base, "bob")
    b = await bob.ws()
    try:
        sent = alice.api(
            "POST",
            f"/api/conversations/{conversation(alice, bob)['id']}/messages/",
            {"content": "logged?", "clientMessageId": "log-scan"},
        )
        assert sent.status_code == 201, sent.text
        assert (await b.wait_type("message.new"))["message"]["id"] == sent.json()["id"]
    finally:
        await b.close()
    passwords = secured.passwords()
    assert {"admin", "chat", "redis"} <= set(passwords) and all(len(p) >= 32 for p in passwords.values())
    logs = {path.name: path.read_text(errors="replace") for path in LOG_DIR.glob(f"{secured_stack.name}-*.log")}
    logs |= {f"broker {path.name}": path.read_text(errors="replace") for path in (secured.kafka_dir / "logs").glob("*")}
    logs["redis.log"] = (secured.redis_dir / "redis.log").read_text(errors="replace")
    logs |= {f"script output {i}": text for i, text in enumerate(secured.script_output)}
    # The logs scanned are those of a system that worked: the web served, the bridge consumed, the broker authenticated.
    assert any("WSCONNECT" in text for text in logs.values())
    assert any("Consuming chat-messages" in text for text in logs.values())
    assert any("SASL_SSL" in text for name, text in logs.items() if name.startswith("broker"))
    for whose, password in passwords.items():
        leaks = [name for name, text in logs.items() if password in text]
        assert not leaks, f"the {whose} password is in {leaks}"
