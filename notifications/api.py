"""REST endpoints of notifications (PROTOCOL.md §3)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import request_user

from .limits import MAX_PAGE_SIZE, PAGE_SIZE
from .selectors import notifications_for_user
from .services import notification_mark_read, notification_wire, notifications_mark_all_read


class NotificationOut(serializers.Serializer):
    id = serializers.CharField(help_text="This service's own ids are UUIDs; another producer's may be any string.")
    userId = serializers.CharField()
    title = serializers.CharField()
    content = serializers.CharField()
    type = serializers.CharField()
    relatedEntityId = serializers.CharField(allow_null=True)
    read = serializers.BooleanField()
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()
    conversationId = serializers.CharField(
        allow_null=True, help_text="The conversation a NEW_MESSAGE notification announces; null for others."
    )


class NotificationPagination(PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class NotificationListView(APIView):
    @extend_schema(
        parameters=[OpenApiParameter("unread", bool, description="Only unread notifications.")],
        responses=NotificationOut(many=True),
    )
    def get(self, request: Request) -> Response:
        """List the user's notifications, newest first, a page at a time."""
        unread_only = request.query_params.get("unread", "").lower() in {"true", "1"}
        notifications = notifications_for_user(request_user(request), unread_only=unread_only)
        paginator = NotificationPagination()
        page = paginator.paginate_queryset(notifications, request, view=self)
        return paginator.get_paginated_response([notification_wire(n).to_dict() for n in page or []])


class NotificationReadView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, notification_id: str) -> Response:
        """Mark one notification read."""
        notification_mark_read(user=request_user(request), notification_id=notification_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NotificationReadAllView(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        """Mark all of the user's notifications read."""
        notifications_mark_all_read(user=request_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
