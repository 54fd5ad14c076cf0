from django.apps import AppConfig


class UsersConfig(AppConfig):
    """Accounts on top of django.contrib.auth: name rules, login limits, token expiry."""

    name = "users"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # A malformed rate fails at start, not at the first login.
        from django.conf import settings

        from core.ratelimit import parse_rate

        for name in RATE_SETTINGS:
            parse_rate(getattr(settings, name))
        rates = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES") or {}
        for rate in rates.values() if isinstance(rates, dict) else ():
            parse_rate(rate)


RATE_SETTINGS = (
    "CHAT_LOGIN_RATE_PER_USERNAME",
    "CHAT_LOGIN_RATE_PER_ADDRESS",
    "CHAT_REGISTER_RATE_PER_ADDRESS",
    "CHAT_SYNC_RATE",
    "CHAT_TYPING_RATE",
)
