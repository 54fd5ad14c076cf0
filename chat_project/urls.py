from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from kafka_bridge.operate import pages as kafka_pages
from messaging import api as messaging_api
from messaging.selectors import messages_per_minute
from notifications import api as notifications_api
from users import accounts
from users import api as users_api
from users.throttles import admin_login
from webclient import views as webclient_views

from . import health, metrics
from .api_index import ApiIndexView

api = [
    path("auth/register/", accounts.RegisterView.as_view()),
    path("auth/token/", accounts.TokenView.as_view()),
    path("auth/session/", users_api.SessionLoginView.as_view()),
    path("auth/logout/", users_api.LogoutView.as_view()),
    path("users/", users_api.UserListView.as_view()),
    path("users/me/", users_api.MeView.as_view()),
    path("users/<str:user_id>/", users_api.UserDetailView.as_view()),
    path("conversations/", messaging_api.ConversationListView.as_view()),
    path("conversations/<str:conversation_id>/", messaging_api.ConversationDetailView.as_view()),
    path("conversations/<str:conversation_id>/messages/", messaging_api.MessageListView.as_view()),
    path("conversations/<str:conversation_id>/participants/", messaging_api.ParticipantListView.as_view()),
    path(
        "conversations/<str:conversation_id>/participants/<str:user_id>/",
        messaging_api.ParticipantDetailView.as_view(),
    ),
    path(
        "conversations/<str:conversation_id>/participants/<str:user_id>/role/",
        messaging_api.ParticipantRoleView.as_view(),
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/",
        messaging_api.MessageDetailView.as_view(),
    ),
    path(
        "conversations/<str:conversation_id>/messages/<str:message_id>/edit/",
        messaging_api.MessageEditView.as_view(),
    ),
    path("conversations/<str:conversation_id>/read/", messaging_api.ConversationReadView.as_view()),
    path("conversations/<str:conversation_id>/received/", messaging_api.ConversationReceivedView.as_view()),
    path("conversations/<str:conversation_id>/receipts/", messaging_api.ConversationReceiptsView.as_view()),
    path("notifications/", notifications_api.NotificationListView.as_view()),
    path("notifications/read-all/", notifications_api.NotificationReadAllView.as_view()),
    path("notifications/<str:notification_id>/read/", notifications_api.NotificationReadView.as_view()),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
]

urlpatterns = [
    # Before the admin's own URLs: its login page with the limits on failed logins.
    path("admin/login/", admin_login),
    path("", webclient_views.index, name="webclient"),
    # A conversation's own address: the same page, which opens it (or says it is not found).
    path("c/<path:conversation_id>", webclient_views.index, name="webclient-conversation"),
    path("favicon.ico", webclient_views.favicon),
    *kafka_pages.admin_urls(messages_per_minute=messages_per_minute),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("metrics", metrics.metrics),
    path("api/", ApiIndexView.as_view(patterns=api), name="api-index"),
    path("api/", include(api)),
]

handler400 = "chat_project.views.bad_request"
handler404 = "chat_project.views.not_found"
handler500 = "chat_project.views.server_error"
