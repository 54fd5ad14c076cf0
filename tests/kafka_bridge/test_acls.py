"""The ACLs the service's Kafka user is granted: its topics and consumer groups, and nothing else.

That they are enough for the whole system, and that a user without them is refused,
is shown against a secured broker in tests/security.
"""

from confluent_kafka.admin import AclOperation, AclPermissionType, ResourcePatternType, ResourceType

from kafka_bridge.operate.acls import service_resources
from kafka_bridge.operate.provisioning import configured_replication, wanted_topics


def bindings(user: str = "chat", group_base: str | None = None):
    return [b for resource in service_resources(group_base) for b in resource.bindings(user)]


def test_each_topic_and_its_dead_letter_topic_by_exact_name():
    topics = {b.name for b in bindings() if b.restype == ResourceType.TOPIC}
    assert topics == {spec.name for spec in wanted_topics(configured_replication(3))}
    assert {"chat-messages", "chat-messages.DLT", "notifications.DLT"} <= topics
    for binding in bindings():
        if binding.restype == ResourceType.TOPIC:
            assert binding.resource_pattern_type == ResourcePatternType.LITERAL


def test_topics_may_be_read_written_created_and_described_never_deleted_or_altered():
    by_topic: dict[str, set] = {}
    for b in bindings():
        if b.restype == ResourceType.TOPIC:
            by_topic.setdefault(b.name, set()).add(b.operation)
    wanted = {AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE_CONFIGS}
    assert all(operations == wanted for operations in by_topic.values()), by_topic


def test_groups_are_the_bridges_prefix_and_the_dead_letter_commands(settings):
    settings.KAFKA_CONSUMER_GROUP = "chat-prod"
    groups = {(b.name, b.resource_pattern_type, b.operation) for b in bindings() if b.restype == ResourceType.GROUP}
    assert groups == {
        ("chat-prod", ResourcePatternType.PREFIXED, AclOperation.READ),
        ("dead-letter-replay", ResourcePatternType.LITERAL, AclOperation.READ),
        ("dead-letter-reader-", ResourcePatternType.PREFIXED, AclOperation.READ),
    }
    prefixed = [b for b in bindings(group_base="other") if b.resource_pattern_type == ResourcePatternType.PREFIXED]
    assert {b.name for b in prefixed} == {"other", "dead-letter-reader-"}


def test_only_allows_for_the_user_from_any_host_and_nothing_on_the_cluster():
    every = bindings("svc")
    assert {b.principal for b in every} == {"User:svc"}
    assert {b.host for b in every} == {"*"}
    assert {b.permission_type for b in every} == {AclPermissionType.ALLOW}
    assert {b.restype for b in every} == {ResourceType.TOPIC, ResourceType.GROUP}
    assert AclOperation.ALL not in {b.operation for b in every}
