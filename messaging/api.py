"""REST endpoints of conversations and messages (PROTOCOL.md §3).

Views parse input with their input serializer (whose limits are those of
limits.py), call one service or selector and return its result; errors are
mapped by core.errors.
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from core.api import StrictCharField, int_param, request_user, validated
from core.ratelimit import SharedRateThrottle
from users.api import last_seen_field, online_field

from . import changes, selectors, services
from .checks import ROLES
from .limits import (
    CONVERSATION_PAGE_DEFAULT_LIMIT,
    CONVERSATION_PAGE_MAX_LIMIT,
    HISTORY_DEFAULT_LIMIT,
    HISTORY_MAX_LIMIT,
    MAX_CLIENT_MESSAGE_ID_CHARS,
    MAX_PARTICIPANTS,
    MAX_TITLE_CHARS,
    MAX_UP_TO_SEQ,
    MAX_USER_ID_CHARS,
)
from .models import MessageKind
from .wire import message_wire

### Serializers ###


class MessageOut(serializers.Serializer):
    id = serializers.UUIDField()
    conversationId = serializers.UUIDField()
    senderId = serializers.CharField()
    content = serializers.CharField()
    seq = serializers.IntegerField()
    clientMessageId = serializers.CharField()
    createdAt = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=["SENT", "DELIVERED", "READ"])
    kind = serializers.ChoiceField(
        choices=MessageKind.values, help_text="`text` for a message; the other kinds are events (contract 1.3)."
    )
    refersTo = serializers.UUIDField(allow_null=True, help_text="The message an `edit` or `delete` is about.")
    meta = serializers.DictField(
        allow_null=True, help_text="An event's details: `{userIds}`, `{title}`, `{content}`..."
    )
    editedAt = serializers.DateTimeField(allow_null=True, help_text="When a text message was last edited.")
    deletedAt = serializers.DateTimeField(
        allow_null=True, help_text="When a text message was deleted; its content is then empty."
    )


class ParticipantOut(serializers.Serializer):
    id = serializers.CharField()
    username = serializers.CharField()
    displayName = serializers.CharField(allow_blank=True, help_text="Empty when the user set none.")
    deliveredSeq = serializers.IntegerField(help_text="This user's client holds every message up to this seq.")
    lastReadSeq = serializers.IntegerField(help_text="Everything up to this seq that others sent is read by this user.")
    role = serializers.ChoiceField(
        choices=ROLES, help_text="In a group: `admin` or `member`; `member` in a direct one."
    )
    joinedSeq = serializers.IntegerField(help_text="The first seq this member receives and may read.")
    online = online_field()
    lastSeenAt = last_seen_field()


class ConversationOut(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=["direct", "group"])
    title = serializers.CharField(allow_blank=True)
    participantIds = serializers.ListField(child=serializers.CharField())
    participants = ParticipantOut(many=True)
    lastSeq = serializers.IntegerField()
    lastMessage = MessageOut(allow_null=True)
    unreadCount = serializers.IntegerField()


class ConversationPageOut(serializers.Serializer):
    results = ConversationOut(many=True)
    next = serializers.CharField(allow_null=True, help_text="The `cursor` of the next page; null on the last.")


class MessageListOut(serializers.Serializer):
    results = MessageOut(many=True)


class ConversationCreateIn(serializers.Serializer):
    participantIds = serializers.ListField(
        child=serializers.CharField(max_length=MAX_USER_ID_CHARS),
        min_length=1,
        max_length=MAX_PARTICIPANTS,
        help_text=f"The other users (ids); one for a direct conversation. At most {MAX_PARTICIPANTS - 1} others.",
    )
    title = StrictCharField(
        max_length=MAX_TITLE_CHARS, required=False, allow_blank=True, default="", help_text="A group's title."
    )


class MessageCreateIn(serializers.Serializer):
    content = StrictCharField(
        trim_whitespace=False,
        allow_blank=True,
        help_text=f"1 to {settings.CHAT_MAX_CONTENT_CHARS} characters after trimming.",
    )
    clientMessageId = StrictCharField(
        max_length=MAX_CLIENT_MESSAGE_ID_CHARS, help_text="The client's id for the message; a repeat is not stored."
    )


class ConversationChangeIn(serializers.Serializer):
    title = StrictCharField(max_length=MAX_TITLE_CHARS, allow_blank=True, help_text="The group's new title.")


class ParticipantsAddIn(serializers.Serializer):
    userIds = serializers.ListField(
        child=serializers.CharField(max_length=MAX_USER_ID_CHARS),
        min_length=1,
        max_length=MAX_PARTICIPANTS - 1,
        help_text="The users to add; those already in are ignored.",
    )


class RoleIn(serializers.Serializer):
    role = serializers.ChoiceField(choices=ROLES)


class MessageEditIn(serializers.Serializer):
    content = StrictCharField(
        trim_whitespace=False,
        allow_blank=True,
        help_text=f"The new content: 1 to {settings.CHAT_MAX_CONTENT_CHARS} characters after trimming.",
    )
    clientMessageId = StrictCharField(
        max_length=MAX_CLIENT_MESSAGE_ID_CHARS, help_text="The client's id for the edit; a repeat is not stored."
    )


class ReadIn(serializers.Serializer):
    upToSeq = serializers.IntegerField(min_value=0, max_value=MAX_UP_TO_SEQ)


class ReceivedIn(serializers.Serializer):
    upToSeq = serializers.IntegerField(
        min_value=1, max_value=MAX_UP_TO_SEQ, help_text="The client holds every message up to this seq."
    )


class WatermarksOut(serializers.Serializer):
    id = serializers.CharField()
    deliveredSeq = serializers.IntegerField()
    readSeq = serializers.IntegerField()


class ReceiptsOut(serializers.Serializer):
    participants = WatermarksOut(many=True)


### Views ###


class ConversationListView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "cursor",
                str,
                description="Ask for a page: empty for the first, then the `next` of the page before. "
                "Without `cursor` and `limit` the answer is the whole list (version 1's shape).",
            ),
            OpenApiParameter(
                "limit",
                int,
                description=f"Conversations per page: 1 to {CONVERSATION_PAGE_MAX_LIMIT}, "
                f"default {CONVERSATION_PAGE_DEFAULT_LIMIT}.",
            ),
        ],
        responses=PolymorphicProxySerializer(
            component_name="ConversationList",
            serializers=[ConversationPageOut, ConversationOut(many=True)],
            resource_type_field_name=None,
            many=False,
        ),
        operation_id="conversations_list",
    )
    def get(self, request: Request) -> Response:
        """List the user's conversations by last activity, newest first: a page `{results, next}` with `cursor`.

        With `cursor` (empty for the first page) or `limit`, the answer is a
        page and `next` the cursor of the following one. Without either, it
        is the whole list as a JSON array, as version 1 answered.
        """
        user = request_user(request)
        params = request.query_params
        if "cursor" not in params and "limit" not in params:
            return Response(selectors.conversation_summaries(list(selectors.conversations_by_activity(user))))
        page, next_cursor = selectors.conversation_page_for_user(
            user=user, cursor=params.get("cursor"), limit=int_param(request, "limit")
        )
        return Response({"results": selectors.conversation_summaries(page), "next": next_cursor})

    @extend_schema(request=ConversationCreateIn, responses={200: ConversationOut, 201: ConversationOut})
    def post(self, request: Request) -> Response:
        """Start a conversation with the given user ids: a group (201), or the direct one with one user.

        For one other user the answer is their direct conversation: 201 when it is
        new, 200 with the existing one. The creator is always a participant.
        """
        data = validated(ConversationCreateIn, request.data)
        conversation, created = services.conversation_create(
            creator=request_user(request), participant_ids=data["participantIds"], title=data["title"]
        )
        conversation = selectors.conversation_get_for_user(user=request_user(request), conversation_id=conversation.pk)
        (summary,) = selectors.conversation_summaries([conversation])
        return Response(summary, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _conversation_answer(request: Request, conversation_id: object) -> Response:
    conversation = selectors.conversation_get_for_user(user=request_user(request), conversation_id=str(conversation_id))
    (summary,) = selectors.conversation_summaries([conversation])
    return Response(summary)


class ConversationDetailView(APIView):
    # These answer 403 forbidden to members without the right (see messaging/rights.py).
    rights_checked_on = frozenset({"PATCH"})

    @extend_schema(responses=ConversationOut)
    def get(self, request: Request, conversation_id: str) -> Response:
        """Return one of the user's conversations."""
        return _conversation_answer(request, conversation_id)

    @extend_schema(request=ConversationChangeIn, responses=ConversationOut)
    def patch(self, request: Request, conversation_id: str) -> Response:
        """Rename a group (its admins): a `renamed` event in the conversation; 403 for other members."""
        data = validated(ConversationChangeIn, request.data)
        changes.conversation_rename(actor=request_user(request), conversation_id=conversation_id, title=data["title"])
        return _conversation_answer(request, conversation_id)


class ParticipantListView(APIView):
    # These answer 403 forbidden to members without the right (see messaging/rights.py).
    rights_checked_on = frozenset({"POST"})

    @extend_schema(request=ParticipantsAddIn, responses=ConversationOut)
    def post(self, request: Request, conversation_id: str) -> Response:
        """Add users to a group (its admins): one `member_added` event; users already in are ignored.

        The added users see the conversation from that event on (`joinedSeq`), not its earlier messages.
        """
        data = validated(ParticipantsAddIn, request.data)
        changes.conversation_add_members(
            actor=request_user(request), conversation_id=conversation_id, user_ids=data["userIds"]
        )
        return _conversation_answer(request, conversation_id)


class ParticipantDetailView(APIView):
    # These answer 403 forbidden to members without the right (see messaging/rights.py).
    rights_checked_on = frozenset({"DELETE"})

    @extend_schema(responses={204: None})
    def delete(self, request: Request, conversation_id: str, user_id: str) -> Response:
        """Leave a group (`userId` is your own) or, as an admin, remove a member: `member_left` or `member_removed`.

        The departed member gets that event and nothing later; their history up to it stays readable.
        """
        changes.conversation_remove_member(
            actor=request_user(request), conversation_id=conversation_id, user_id=user_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ParticipantRoleView(APIView):
    # These answer 403 forbidden to members without the right (see messaging/rights.py).
    rights_checked_on = frozenset({"POST"})

    @extend_schema(request=RoleIn, responses=ConversationOut)
    def post(self, request: Request, conversation_id: str, user_id: str) -> Response:
        """Make a member `admin` or `member` (group admins): a `role_changed` event; a group keeps one admin."""
        data = validated(RoleIn, request.data)
        changes.conversation_set_role(
            actor=request_user(request), conversation_id=conversation_id, user_id=user_id, role=data["role"]
        )
        return _conversation_answer(request, conversation_id)


class MessageListView(APIView):
    throttle_scope = "send"

    def get_throttles(self) -> list[BaseThrottle]:
        """Throttle sending only; reading history is not limited."""
        return [SharedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        parameters=[
            OpenApiParameter("after_seq", int, description="Only messages with a greater seq."),
            OpenApiParameter("before_seq", int, description="Only messages with a smaller seq (newest first page)."),
            OpenApiParameter("limit", int, description=f"1 to {HISTORY_MAX_LIMIT}, default {HISTORY_DEFAULT_LIMIT}."),
        ],
        responses=MessageListOut,
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        """Return a page of the conversation's history in seq order (the newest page without parameters)."""
        messages = selectors.message_history(
            user=request_user(request),
            conversation_id=conversation_id,
            after_seq=int_param(request, "after_seq"),
            before_seq=int_param(request, "before_seq"),
            limit=int_param(request, "limit"),
        )
        return Response({"results": selectors.messages_wire(messages)})

    @extend_schema(request=MessageCreateIn, responses={200: MessageOut, 201: MessageOut})
    def post(self, request: Request, conversation_id: str) -> Response:
        """Send a message, as the WebSocket's message.send: 201 when stored, 200 for a repeated clientMessageId.

        A repeat of a `clientMessageId` the user sent before stores nothing and
        answers the original message. Limited per user (`CHAT_REST_SEND_RATE`).
        """
        data = validated(MessageCreateIn, request.data)
        message, created = services.message_send(
            sender=request_user(request),
            conversation_id=conversation_id,
            content=data["content"],
            client_message_id=data["clientMessageId"],
        )
        return Response(message_wire(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MessageEditView(APIView):
    # These answer 403 forbidden to members without the right (see messaging/rights.py).
    rights_checked_on = frozenset({"POST"})
    throttle_scope = "send"
    throttle_classes = [SharedRateThrottle]

    @extend_schema(request=MessageEditIn, responses={200: MessageOut, 201: MessageOut})
    def post(self, request: Request, conversation_id: str, message_id: str) -> Response:
        """Edit your own text message: 201 with the `edit` event; 200 with it for a repeated clientMessageId.

        History then shows the message with its latest content and `editedAt`.
        """
        data = validated(MessageEditIn, request.data)
        message, created = changes.message_edit(
            sender=request_user(request),
            conversation_id=conversation_id,
            message_id=message_id,
            content=data["content"],
            client_message_id=data["clientMessageId"],
        )
        return Response(message_wire(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class MessageDetailView(APIView):
    # These answer 403 forbidden to members without the right (see messaging/rights.py).
    rights_checked_on = frozenset({"DELETE"})
    throttle_scope = "send"
    throttle_classes = [SharedRateThrottle]

    @extend_schema(responses=MessageOut)
    def delete(self, request: Request, conversation_id: str, message_id: str) -> Response:
        """Delete a text message (its sender, or a group admin): 200 with the `delete` event.

        The message stays in the sequence as a tombstone: empty content, `deletedAt` set.
        """
        message, _created = changes.message_delete(
            actor=request_user(request), conversation_id=conversation_id, message_id=message_id
        )
        return Response(message_wire(message))


class ConversationReadView(APIView):
    @extend_schema(request=ReadIn, responses={204: None})
    def post(self, request: Request, conversation_id: str) -> Response:
        """Mark the conversation read up to `upToSeq`; the senders are told READ."""
        data = validated(ReadIn, request.data)
        services.conversation_mark_read(
            user=request_user(request), conversation_id=conversation_id, up_to_seq=data["upToSeq"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationReceivedView(APIView):
    @extend_schema(request=ReceivedIn, responses={204: None})
    def post(self, request: Request, conversation_id: str) -> Response:
        """Confirm that the client holds every message up to `upToSeq`, as the WebSocket's message.received.

        The user's delivered watermark moves there (at most to the last seq;
        a lower value changes nothing); the senders are told DELIVERED.
        """
        data = validated(ReceivedIn, request.data)
        services.conversation_mark_received(
            user=request_user(request), conversation_id=conversation_id, up_to_seq=data["upToSeq"]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConversationReceiptsView(APIView):
    @extend_schema(responses=ReceiptsOut)
    def get(self, request: Request, conversation_id: str) -> Response:
        """Return every participant's delivered and read watermarks (the detail of big groups' aggregates)."""
        participants = selectors.conversation_receipts(user=request_user(request), conversation_id=conversation_id)
        return Response({"participants": participants})
