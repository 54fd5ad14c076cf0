"""REST endpoints of conversations and messages (PROTOCOL.md §3).

Views parse input with their input serializer, call one service or selector
and return its result; errors are mapped by chat_project.errors.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat_project.errors import ValidationFailed
from chat_project.limits import SharedRateThrottle

from . import selectors, services
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


class ConversationOut(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=["direct", "group"])
    title = serializers.CharField(allow_blank=True)
    participantIds = serializers.ListField(child=serializers.CharField())
    lastSeq = serializers.IntegerField()
    lastMessage = MessageOut(allow_null=True)
    unreadCount = serializers.IntegerField()


class MessageListOut(serializers.Serializer):
    results = MessageOut(many=True)


class ConversationCreateIn(serializers.Serializer):
    participantIds = serializers.ListField(child=serializers.CharField(max_length=20), min_length=1, max_length=500)
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class MessageCreateIn(serializers.Serializer):
    content = serializers.CharField(trim_whitespace=False, allow_blank=True)
    clientMessageId = serializers.CharField(max_length=100)


class ReadIn(serializers.Serializer):
    upToSeq = serializers.IntegerField(min_value=0)


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Validate request data with an input serializer, raising the contract's error."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        raise ValidationFailed(serializer.errors)
    return serializer.validated_data


def int_param(request: Request, name: str) -> int | None:
    """Return an optional non-negative integer query parameter."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed({name: "Must be an integer."}) from None
    if value < 0:
        raise ValidationFailed({name: "Must not be negative."})
    return value


### Views ###


class ConversationListView(APIView):
    @extend_schema(responses=ConversationOut(many=True))
    def get(self, request: Request) -> Response:
        conversations = list(selectors.conversations_for_user(request.user))
        return Response(selectors.conversation_summaries(conversations))

    @extend_schema(request=ConversationCreateIn, responses={200: ConversationOut, 201: ConversationOut})
    def post(self, request: Request) -> Response:
        data = validated(ConversationCreateIn, request.data)
        conversation, created = services.conversation_create(
            creator=request.user, participant_ids=data["participantIds"], title=data["title"]
        )
        conversation = selectors.conversation_get_for_user(user=request.user, conversation_id=conversation.pk)
        (summary,) = selectors.conversation_summaries([conversation])
        return Response(summary, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ConversationDetailView(APIView):
    @extend_schema(responses=ConversationOut)
    def get(self, request: Request, conversation_id: str) -> Response:
        conversation = selectors.conversation_get_for_user(user=request.user, conversation_id=conversation_id)
        (summary,) = selectors.conversation_summaries([conversation])
        return Response(summary)


class MessageListView(APIView):
    throttle_scope = "send"

    def get_throttles(self) -> list[SharedRateThrottle]:
        """Throttle sending only; reading history is not limited."""
        return [SharedRateThrottle()] if self.request.method == "POST" else []

    @extend_schema(
        parameters=[
            OpenApiParameter("after_seq", int, description="Only messages with a greater seq."),
            OpenApiParameter("before_seq", int, description="Only messages with a smaller seq (newest first page)."),
            OpenApiParameter("limit", int, description="1 to 200, default 50."),
        ],
        responses=MessageListOut,
    )
    def get(self, request: Request, conversation_id: str) -> Response:
        messages = selectors.message_history(
            user=request.user,
            conversation_id=conversation_id,
            after_seq=int_param(request, "after_seq"),
            before_seq=int_param(request, "before_seq"),
            limit=int_param(request, "limit"),
        )
        return Response({"results": [message_wire(m) for m in messages]})

    @extend_schema(request=MessageCreateIn, responses={200: MessageOut, 201: MessageOut})
    def post(self, request: Request, conversation_id: str) -> Response:
        data = validated(MessageCreateIn, request.data)
        message, created = services.message_send(
            sender=request.user,
            conversation_id=conversation_id,
            content=data["content"],
            client_message_id=data["clientMessageId"],
        )
        return Response(message_wire(message), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ConversationReadView(APIView):
    @extend_schema(request=ReadIn, responses={204: None})
    def post(self, request: Request, conversation_id: str) -> Response:
        data = validated(ReadIn, request.data)
        services.conversation_mark_read(user=request.user, conversation_id=conversation_id, up_to_seq=data["upToSeq"])
        return Response(status=status.HTTP_204_NO_CONTENT)
