"""Who may read the web's /metrics: loopback and METRICS_ALLOWED_CIDRS, nobody else (a JSON 404)."""

import ipaddress

import pytest
from asgiref.sync import sync_to_async

from chat_project.metrics import address_allowed

NETWORKS = [ipaddress.ip_network("10.20.0.0/16"), ipaddress.ip_network("fd00:1::/64")]


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.20.3.4", True),
        ("::ffff:10.20.3.4", True),
        ("fd00:1::5", True),
        ("10.21.0.1", False),
        ("192.0.2.7", False),
        ("fd00:2::5", False),
        ("", False),
        (None, False),
        ("not an address", False),
    ],
)
def test_address_allowed(address, allowed):
    assert address_allowed(address, NETWORKS) is allowed


def test_loopback_only_without_networks():
    assert address_allowed("127.0.0.1", [])
    assert not address_allowed("10.20.3.4", [])


@pytest.mark.django_db
def test_metrics_view_answers_loopback_and_allowed_networks_and_404_to_others(client, settings, monkeypatch):
    # The outbox count on the test's own connection: a pool thread's would outlive the test database.
    monkeypatch.setattr("chat_project.metrics.db", lambda func: sync_to_async(func, thread_sensitive=True))
    settings.METRICS_ALLOWED_NETWORKS = []
    answer = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=")
    body = answer.content.decode()
    for name in (
        "chat_messages_sent_total",
        "chat_send_ack_seconds_bucket",
        "chat_ws_connections",
        "chat_outbox_records 0.0",
        "kafka_producer_errors_total",
    ):
        assert name in body, name
    # The bridge's series are the bridge's to list: this process imports them but never counts them.
    assert "kafka_bridge_" not in body and "kafka_consumer_lag" not in body
    refused = client.get("/metrics", REMOTE_ADDR="10.20.3.4")
    assert refused.status_code == 404
    assert refused.json() == {"code": "not_found", "detail": "Not found."}
    settings.METRICS_ALLOWED_NETWORKS = NETWORKS
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
