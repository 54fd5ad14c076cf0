from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Follow read watermarks: a NEW_MESSAGE notification is read once its conversation is read past it."""
        from messaging.services import on_read_moved

        from .services import notifications_mark_read_up_to

        on_read_moved(notifications_mark_read_up_to)
