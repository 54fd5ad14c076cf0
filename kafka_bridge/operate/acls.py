"""The Kafka ACLs the service's user needs: its own topics and consumer groups, nothing more.

On a broker with an authorizer (StandardAuthorizer: nothing is allowed
without an ACL), `manage.py kafka_acls --user NAME`, run as a super user,
grants them. The topics are those the apps registered and their dead-letter
topics, each by its exact name; the groups are the bridge's (the
KAFKA_CONSUMER_GROUP prefix, which its loops' suffixes extend) and those of
the dead-letter commands. Nothing on the cluster: deleting topics, other
users' topics and groups, and ACLs stay with the super user.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from django.conf import settings

from ..produce.clients import admin_client
from .dead_letters import READER_GROUP_PREFIX, REPLAY_GROUP
from .provisioning import wanted_topic_names

TIMEOUT_SECONDS = 15.0
# Consume and produce (both imply describe), and what kafka_topics does: create a missing
# topic and compare the configs of existing ones (kafka_status reads them too).
TOPIC_OPERATIONS = (AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.DESCRIBE_CONFIGS)
# Join, commit, and read the group's offsets (read implies describe).
GROUP_OPERATIONS = (AclOperation.READ,)
ANY_HOST = "*"


@dataclass(frozen=True)
class Resource:
    """A topic or group name, or a prefix of names, that the service uses."""

    kind: ResourceType
    name: str
    prefixed: bool = False

    @property
    def operations(self) -> tuple[AclOperation, ...]:
        return TOPIC_OPERATIONS if self.kind == ResourceType.TOPIC else GROUP_OPERATIONS

    def bindings(self, user: str) -> list[AclBinding]:
        """Return the ACL bindings that allow `user` this resource's operations."""
        pattern = ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL
        return [
            AclBinding(self.kind, self.name, pattern, f"User:{user}", ANY_HOST, op, AclPermissionType.ALLOW)
            for op in self.operations
        ]

    def __str__(self) -> str:
        operations = ", ".join(op.name for op in self.operations)
        return f"{self.kind.name.lower()} {self.name}{'*' if self.prefixed else ''}: {operations}"


def service_resources(group_base: str | None = None) -> list[Resource]:
    """Return the topics and consumer groups the service uses (group names from `group_base` on)."""
    topics = [Resource(ResourceType.TOPIC, name) for name in wanted_topic_names()]
    groups = [
        Resource(ResourceType.GROUP, group_base or settings.KAFKA_CONSUMER_GROUP, prefixed=True),
        Resource(ResourceType.GROUP, REPLAY_GROUP),
        Resource(ResourceType.GROUP, READER_GROUP_PREFIX, prefixed=True),
    ]
    return topics + groups


def grant_service_acls(user: str, *, group_base: str | None = None, admin: AdminClient | None = None) -> list[Resource]:
    """Create the service's ACL bindings for `user` (existing ones stay as they are); return what they allow.

    The client must authenticate as a user allowed to alter ACLs (a super user).
    """
    admin = admin or admin_client()
    resources = service_resources(group_base)
    bindings = [binding for resource in resources for binding in resource.bindings(user)]
    for future in admin.create_acls(bindings, request_timeout=TIMEOUT_SECONDS).values():
        future.result()  # raises KafkaException, e.g. CLUSTER_AUTHORIZATION_FAILED for a user that may not
    return resources
