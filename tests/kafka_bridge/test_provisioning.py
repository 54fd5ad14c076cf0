"""Replication follows the cluster's size unless the settings fix it."""

import pytest

from kafka_bridge.operate.provisioning import (
    ProvisioningError,
    Replication,
    configured_replication,
    replication_for,
    wanted_topics,
)


@pytest.mark.parametrize(
    ("brokers", "expected"),
    [(1, Replication(1, 1)), (2, Replication(2, 2)), (3, Replication(3, 2)), (5, Replication(3, 2))],
)
def test_replication_follows_the_number_of_brokers(brokers, expected):
    assert replication_for(brokers) == expected


def test_settings_win_over_the_clusters_size():
    assert replication_for(5, factor=5) == Replication(5, 2)
    assert replication_for(3, min_insync=1) == Replication(3, 1)
    assert replication_for(3, factor=2, min_insync=2) == Replication(2, 2)


def test_more_in_sync_replicas_than_replicas_is_refused():
    with pytest.raises(ProvisioningError, match=r"min\.insync\.replicas 3 is more than the replication factor 2"):
        replication_for(3, factor=2, min_insync=3)
    with pytest.raises(ProvisioningError, match="no broker"):
        replication_for(0)


def test_every_topic_gets_the_replication_and_its_min_insync(settings):
    settings.KAFKA_REPLICATION_FACTOR = 0
    settings.KAFKA_MIN_INSYNC_REPLICAS = 0
    specs = wanted_topics(configured_replication(3))
    assert {s.replication_factor for s in specs} == {3}
    assert {s.config["min.insync.replicas"] for s in specs} == {"2"}
    assert {s.name for s in specs} >= {"chat-messages", "chat-messages.DLT", "notifications.DLT"}
    assert all("retention.ms" in s.config for s in specs)
