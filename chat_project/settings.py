"""Settings for the chat backend, all read from the environment in this one place.

Every integration has a zero-setup default for running locally (a SQLite file,
Kafka and Redis on localhost); production sets the variables listed in
`.env.example`. A variable the environment does not set is read from the
checkout's `.env` when there is one (chat_project/dotenv.py; `make run` writes
it with a secret key of its own). A setting that must not be guessed in
production (the secret key) fails loudly when DEBUG is off.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from chat_project.dotenv import read_dotenv
from chat_project.kafka_security import kafka_security

BASE_DIR = Path(__file__).resolve().parent.parent

# What the environment does not set comes from here. The tests point it at
# /dev/null, so that a developer's .env does not change what they test.
DOTENV = read_dotenv(BASE_DIR / (os.environ.get("DJANGO_ENV_FILE") or ".env"))


def env(name: str, default: str = "") -> str:
    """Return a variable of the environment, else of .env, or the default when unset or empty in both."""
    return os.environ.get(name) or DOTENV.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean variable ("1", "true", "yes", "on" are true)."""
    raw = env(name)
    return raw.strip().lower() in {"1", "true", "yes", "on"} if raw else default


def env_int(name: str, default: int) -> int:
    """Read an integer variable."""
    raw = env(name)
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    """Read a float variable."""
    raw = env(name)
    return float(raw) if raw else default


### Core ###

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set DJANGO_SECRET_KEY in the environment or in .env (or DJANGO_DEBUG=1 for local development; "
            "`make run` writes a .env with both)."
        )
    SECRET_KEY = "insecure-local-development-key"

ALLOWED_HOSTS = [h.strip() for h in env("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]

# Served to browsers over HTTPS (a TLS proxy in front): one switch turns on the
# redirect, secure cookies and HSTS; each can be overridden. Off by default,
# because the server itself speaks plain HTTP (make run, the tests, compose).
HTTPS = env_bool("DJANGO_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", HTTPS)
# Probes and scrapers talk plain HTTP from inside the host or the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", HTTPS)
# The TLS proxy says which scheme the client used; trust it only behind one that sets it.
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", HTTPS):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "kafka_bridge",
    "users",
    "messaging",
    "notifications",
    "webclient",
    # The wiring on top: its commands (serve) and templates.
    "chat_project",
]

MIDDLEWARE = [
    # First: every response counts, the other middleware's included (chat_http_responses_total).
    "chat_project.metrics.count_responses",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chat_project.urls"
ASGI_APPLICATION = "chat_project.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The project's own overrides of installed apps' templates (the API docs page).
        "DIRS": [BASE_DIR / "chat_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

### Database ###

# A SQLite file is the zero-setup default; production and the tests use
# PostgreSQL through DATABASE_URL.
DATABASES = {"default": dj_database_url.parse(env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Connections stay open (each thread keeps its own). WAL lets readers go on
    # while one writer commits, and with it synchronous=NORMAL survives a crash
    # of any process (not a power cut). IMMEDIATE transactions take the write
    # lock up front, so concurrent senders queue instead of failing.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # A pool per process: a database call borrows a connection the pool already
    # knows to be healthy, instead of checking one with a query of its own.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": env_int("DATABASE_POOL_MIN_SIZE", 2),
            "max_size": env_int("DATABASE_POOL_MAX_SIZE", 16),
            "timeout": env_float("DATABASE_POOL_TIMEOUT_SECONDS", 10.0),
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "users.passwords.NotOnlyWhitespaceValidator"},
]
# Usernames are unique regardless of case (users/usernames.py), so login ignores it too.
AUTHENTICATION_BACKENDS = ["users.backends.CaseInsensitiveModelBackend"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The admin's static files, served by the ASGI app itself (no separate web server needed).
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

### Channels ###

# One URL, or several separated by commas: the channel layer shards its channels
# and groups over all of them (channels_redis's consistent hash on the list, so
# every web and bridge process must be given the same list in the same order).
# The cache, the rate limits and presence keep to the first; readiness pings them all.
REDIS_URLS = [url.strip() for url in env("REDIS_URL", "redis://127.0.0.1:6379/0").split(",") if url.strip()]
if not REDIS_URLS:
    raise ImproperlyConfigured("REDIS_URL names no Redis server.")
REDIS_URL = REDIS_URLS[0]
# Names every key and pub/sub channel this deployment uses, so that several
# deployments can share one Redis (pub/sub ignores database numbers).
REDIS_PREFIX = env("REDIS_PREFIX", "chat")

# The pub/sub layer is used because the core layer drops group messages
# silently once a channel holds `capacity` of them (see benchmarks/); ours
# sends its subscriptions in batches (chat_project/channel_layer.py).
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "chat_project.channel_layer.BatchingPubSubChannelLayer",
        "CONFIG": {"hosts": REDIS_URLS, "prefix": REDIS_PREFIX},
    }
}

# One cache for every web process (a per-process memory cache would give each
# process its own counts). Rate limits use Redis directly (core/ratelimit.py).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_PREFIX,
    }
}

### REST framework ###

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users.tokens.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "chat_project.schema.ChatAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.rest_exception_handler",
    # Posting messages over REST, per user in Redis (core.ratelimit.SharedRateThrottle);
    # WebSockets have their own per-user limit.
    "DEFAULT_THROTTLE_RATES": {"send": env("CHAT_REST_SEND_RATE", "120/min")},
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chat service API",
    "DESCRIPTION": (
        "REST side of the chat service contract, version 1. Authenticate with `Authorization: Token <token>` "
        "(from `POST /api/auth/token/`) or a session. Real-time delivery is the WebSocket at `/ws/chat/` "
        "(`?token=<token>`). Every error answers `{code, detail}`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and Redoc from the drf-spectacular-sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Swagger UI would otherwise ask an online validator about the schema.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

### Chat ###

CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 64 * 1024)
CHAT_MAX_CONTENT_CHARS = env_int("CHAT_MAX_CONTENT_CHARS", 4000)
# A socket whose unsent outgoing bytes (held by the server beyond what the kernel
# buffers) pass this is closed with 1013 and recovers by `sync`. 1 MiB is 16
# frames of the largest size or hundreds of full-length messages: a client that
# far behind is not reading, and memory per socket stays bounded.
CHAT_WS_MAX_OUTGOING_BYTES = env_int("CHAT_WS_MAX_OUTGOING_BYTES", 1024 * 1024)
CHAT_SYNC_BATCH_MAX = 500
# Delivery by watermark (PROTOCOL.md §6). A connected client whose delivered watermark stays below
# messages of others for this long gets them again without reconnecting.
CHAT_REDELIVER_AFTER_SECONDS = env_float("CHAT_REDELIVER_AFTER_SECONDS", 10.0)
# Above this many participants, watermark moves are announced as aggregates only (detail is on REST).
CHAT_RECEIPT_DETAIL_MAX_MEMBERS = env_int("CHAT_RECEIPT_DETAIL_MAX_MEMBERS", 32)
# Edits and deletes of a message are refused this long after it was sent; 0: no limit (PROTOCOL.md §7).
CHAT_EDIT_WINDOW_SECONDS = env_float("CHAT_EDIT_WINDOW_SECONDS", 0.0)
# Sends waiting or being stored in one web process, past which a send is refused with rate_limited
# and this retryAfterMs: overload pushes back instead of growing a queue (and the time to an ack).
CHAT_MAX_SENDS_UNDER_WAY = env_int("CHAT_MAX_SENDS_UNDER_WAY", 128)
CHAT_OVERLOAD_RETRY_AFTER_MS = env_int("CHAT_OVERLOAD_RETRY_AFTER_MS", 500)
# A socket whose process died stops counting as online after this long.
CHAT_PRESENCE_TTL_SECONDS = env_float("CHAT_PRESENCE_TTL_SECONDS", 60.0)
# The people a user shares a direct conversation with get at most one `presence` frame about the user this
# often; a reconnect within it (a page reload, a network blip) is no change and sends nothing.
CHAT_PRESENCE_NOTIFY_SECONDS = env_float("CHAT_PRESENCE_NOTIFY_SECONDS", 10.0)

### Limits ###

# Per user, across all of the user's sockets and every web process (in Redis;
# messaging/ratelimit.py). A rate "N/period" is at most N in any such period.
# message.send: a burst, then a steady rate.
CHAT_SEND_BURST = env_int("CHAT_SEND_BURST", 30)
CHAT_SEND_RATE_PER_SECOND = env_float("CHAT_SEND_RATE_PER_SECOND", 10.0)
# isTyping: true goes out once per user and conversation per interval (the contract's 2 s).
CHAT_TYPING_INTERVAL_SECONDS = env_float("CHAT_TYPING_INTERVAL_SECONDS", 2.0)
# Typing frames that go out (every false, and true past the interval): about two a second.
CHAT_TYPING_RATE = env("CHAT_TYPING_RATE", "120/min")
# A reconnecting client syncs a few times (500 messages each); 60 a minute is a
# 30,000-message backlog.
CHAT_SYNC_RATE = env("CHAT_SYNC_RATE", "60/min")
# Open sockets per user (tabs and devices); the next one is closed with 1008. 0: no cap.
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20)
# Failed logins (API and admin), per username regardless of case and per client address;
# over either, logins are refused with 429 before any password is checked.
CHAT_LOGIN_RATE_PER_USERNAME = env("CHAT_LOGIN_RATE_PER_USERNAME", "10/15m")
CHAT_LOGIN_RATE_PER_ADDRESS = env("CHAT_LOGIN_RATE_PER_ADDRESS", "50/15m")
# Registrations per client address, successful or not.
CHAT_REGISTER_RATE_PER_ADDRESS = env("CHAT_REGISTER_RATE_PER_ADDRESS", "20/h")
# Reverse proxies in front of the web server whose X-Forwarded-For is trusted for the
# client's address (0: the address of the connection itself).
CHAT_TRUSTED_PROXIES = env_int("CHAT_TRUSTED_PROXIES", 0)
# An API token is accepted this long after it was issued (7 days); then 401 token_expired.
CHAT_TOKEN_TTL_SECONDS = env_int("CHAT_TOKEN_TTL_SECONDS", 7 * 24 * 3600)

### Web server ###

# `manage.py serve` runs this many daphne processes on one listening socket.
WEB_PROCESSES = env_int("WEB_PROCESSES", os.cpu_count() or 1)

### Metrics and probes ###

# Networks besides loopback that may read the web's /metrics (comma-separated
# CIDRs, e.g. the Prometheus server's); everyone else gets 404.
try:
    METRICS_ALLOWED_NETWORKS = [
        ipaddress.ip_network(cidr.strip(), strict=False)
        for cidr in env("METRICS_ALLOWED_CIDRS").split(",")
        if cidr.strip()
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_CIDRS: {exc}") from exc
# The bridge's own HTTP endpoint (/metrics, /healthz, /readyz); port 0 takes a free one (logged).
BRIDGE_HTTP_HOST = env("BRIDGE_HTTP_HOST", "127.0.0.1")
BRIDGE_HTTP_PORT = env_int("BRIDGE_HTTP_PORT", 9101)
# The bridge is ready only while each loop has polled within this many seconds
# (a loop stuck in a handler stops polling) and holds partitions.
BRIDGE_READY_POLL_SECONDS = env_float("BRIDGE_READY_POLL_SECONDS", 30.0)

### Kafka ###

KAFKA_BOOTSTRAP_SERVERS = env("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
KAFKA_CONSUMER_GROUP = env("KAFKA_CONSUMER_GROUP", "communication-service-group")
KAFKA_TOPIC_PARTITIONS = env_int("KAFKA_TOPIC_PARTITIONS", 3)
# Replicas of each topic, and how many of them must hold a record before the
# broker acknowledges it (the producers ask for acks=all). 0, the default: from
# the brokers the cluster reports when kafka_topics runs, min(3, brokers)
# replicas and min(2, replicas) in sync (kafka_bridge/operate/provisioning.py).
KAFKA_REPLICATION_FACTOR = env_int("KAFKA_REPLICATION_FACTOR", 0)
KAFKA_MIN_INSYNC_REPLICAS = env_int("KAFKA_MIN_INSYNC_REPLICAS", 0)
if KAFKA_REPLICATION_FACTOR < 0 or KAFKA_MIN_INSYNC_REPLICAS < 0:
    raise ImproperlyConfigured(
        "KAFKA_REPLICATION_FACTOR and KAFKA_MIN_INSYNC_REPLICAS take a number of replicas, or 0 to follow the cluster."
    )
# A loop whose Kafka consumer delivered nothing for this long while records
# arrived in its partitions replaces it (kafka_bridge/consume/watchers.py).
KAFKA_STUCK_CONSUMER_SECONDS = env_float("KAFKA_STUCK_CONSUMER_SECONDS", 10.0)
# Client security settings (chat_project/kafka_security.py), passed through to every librdkafka client.
KAFKA_SECURITY = kafka_security(env)

### Logging ###

LOG_LEVEL = env("LOG_LEVEL", "INFO")
# json: one JSON object per line (time, level, logger, role, message, and the record's
# messageId, conversationId, topic, partition, offset where known); plain: a line for people.
LOG_FORMAT = env("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, not {LOG_FORMAT!r}.")
LOGGING_CONFIG = "core.logs.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_tokens": {"()": "core.logs.RedactTokens"},
        "client_errors_at_info": {"()": "core.logs.ClientErrorsAtInfo"},
        "kafka_repeats": {"()": "core.logs.KafkaRepeats"},
    },
    "formatters": {"json": {"()": "core.logs.JsonFormatter"}, "plain": {"()": "core.logs.PlainFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["kafka_repeats", "client_errors_at_info", "redact_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own handlers (a second console line in DEBUG, mail to ADMINS) give way to
        # the one above: every line in one format, tokens redacted.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "propagate": True},
        "py.warnings": {"handlers": [], "propagate": True},
    },
}

# Whether the entry points (each web process, send_notification) start this
# process's outbox relay, which publishes its own commits at once; off only in
# processes (like the unit tests) that must not talk to Kafka. The bridge
# always relays unless run with --no-relay.
OUTBOX_RELAY_AUTOSTART = env_bool("OUTBOX_RELAY_AUTOSTART", True)
# A record still in the outbox this long after its commit was not got out by its
# own process (it died, or does not relay): any relay's sweep sends it then,
# unless its relay renewed its lease within as long (kafka_bridge/produce/lease.py).
OUTBOX_SWEEP_AFTER_SECONDS = env_float("OUTBOX_SWEEP_AFTER_SECONDS", 5.0)
