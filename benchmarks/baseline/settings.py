"""Settings of the baseline server: the tutorial's room on the same Redis and PostgreSQL, nothing else.

Nothing of the project's own code is loaded. The database keeps its
connection open between messages (`conn_max_age`), as the project does.
"""

from __future__ import annotations

import os

import dj_database_url

SECRET_KEY = "baseline-benchmark"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["channels", "benchmarks.baseline"]
ASGI_APPLICATION = "benchmarks.baseline.asgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chat_baseline"), conn_max_age=60
    )
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {
            "hosts": [os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")],
            "prefix": os.environ.get("REDIS_PREFIX", "baseline"),
        },
    }
}

# "tutorial + INSERT": one row per message, written before the group_send.
BASELINE_INSERT = os.environ.get("BASELINE_INSERT") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
