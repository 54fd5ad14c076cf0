"""Who may change a conversation and its messages (PROTOCOL.md §7): the one place that decides.

Each `check_*` takes what the service read under the conversation's row
lock (the conversation, its current members, the message concerned) and
returns or raises, never writes, so a refusal stores nothing and uses no
seq. The WebSocket consumer, the REST views and the admin all reach these
through the services. Refusals, in the order they are checked:

- `NotFound`: the user is not a member, or the message is unknown or not
  visible to them; identical to an unknown conversation;
- `Forbidden`: a member without the right (not an admin, not the sender);
- `ValidationFailed`: what is asked cannot be done (a direct conversation,
  someone who is not a member, a message that is not text or is deleted,
  past the edit window, the last admin stepping down).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.conf import settings

from core.errors import Forbidden, NotFound, ValidationFailed

from .models import Conversation, Message, MessageKind, Participant

ADMIN = Participant.Role.ADMIN.value
MEMBER = Participant.Role.MEMBER.value


def check_member(members: Mapping[int, Participant], user_id: int) -> Participant:
    """Return the user's membership; NotFound (as for an unknown conversation) when the user is not a member."""
    member = members.get(user_id)
    if member is None:
        raise NotFound()
    return member


def check_group(conversation: Conversation) -> None:
    """Membership, titles and roles change in groups only."""
    if conversation.kind != Conversation.Kind.GROUP:
        raise ValidationFailed({"conversationId": "A direct conversation has no membership changes, title or admins."})


def check_admin(member: Participant) -> None:
    """Only a group admin changes the membership (of others), the title and roles."""
    if member.role != ADMIN:
        raise Forbidden("Only a group admin may do this.")


def check_may_manage(conversation: Conversation, member: Participant) -> None:
    """A change of the group itself (adding people, renaming, roles): a group admin's."""
    check_group(conversation)
    check_admin(member)


def check_removal(
    conversation: Conversation, actor: Participant, user_id: int, members: Mapping[int, Participant]
) -> Participant:
    """Return the membership that ends: the actor's own (leaving, anyone's right), or another's (an admin's)."""
    check_group(conversation)
    if user_id != actor.user_id:
        check_admin(actor)
    target = members.get(user_id)
    if target is None:
        raise ValidationFailed({"userId": "Not a member of this group."})
    return target


def check_role_change(
    conversation: Conversation, actor: Participant, user_id: int, role: str, members: Mapping[int, Participant]
) -> Participant:
    """Return the membership whose role changes; a group keeps at least one admin."""
    check_may_manage(conversation, actor)
    target = members.get(user_id)
    if target is None:
        raise ValidationFailed({"userId": "Not a member of this group."})
    if role != ADMIN and target.role == ADMIN and not any(m.role == ADMIN for m in members.values() if m != target):
        raise ValidationFailed({"role": "A group keeps at least one admin: make another member admin first."})
    return target


def check_may_change_message(
    conversation: Conversation, actor: Participant, target: Message | None, *, deleting: bool, now: datetime
) -> Message:
    """Return the text message the actor edits (its sender only) or deletes (its sender, or a group admin)."""
    if target is None or target.conversation_id != conversation.pk or target.seq < actor.joined_seq:
        raise NotFound()
    if target.sender_id != actor.user_id:
        if not deleting:
            raise Forbidden("Only its sender may edit a message.")
        if conversation.kind != Conversation.Kind.GROUP or actor.role != ADMIN:
            raise Forbidden("Only its sender or a group admin may delete a message.")
    if target.kind != MessageKind.TEXT:
        raise ValidationFailed({"messageId": "Only text messages are edited or deleted."})
    if target.deleted_at is not None:
        raise ValidationFailed({"messageId": "The message is deleted."})
    window = settings.CHAT_EDIT_WINDOW_SECONDS
    if window and (now - target.created_at).total_seconds() > window:
        raise ValidationFailed({"messageId": f"Messages are edited or deleted within {window:g} seconds of sending."})
    return target


def longest_standing(members: Mapping[int, Participant]) -> Participant | None:
    """Return the member who has been in the group longest (the one who becomes admin when the last one leaves)."""
    return min(members.values(), key=lambda m: (m.joined_seq, m.joined_at, m.user_id), default=None)
