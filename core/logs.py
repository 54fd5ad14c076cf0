"""Log lines that say which process wrote them, and never carry a token.

Every line names its role: the process's (`web`, `bridge`; `cli` for
commands), or the thread's where a thread does a job of its own (the outbox
relay logs as `relay` in whichever process runs it). With `LOG_FORMAT=json`
each line is one JSON object, `time, level, logger, role, message`, plus the
record's place and identity where the log call knows them: pass them with
`extra=` under the names in FIELDS (`extra={"topic": ..., "offset": ...}`).

Tokens are redacted from the message, its arguments and any traceback
(`RedactTokens`), so that a `?token=` query string or an `Authorization`
header never reaches a log. A client's 4xx is the client's business: Django
logs it as WARNING, `ClientErrorsAtInfo` lowers it to INFO (5xx stay ERROR).
Identical Kafka warnings are merged (`KafkaRepeats`): a broker outage is a
line per client and reason every few seconds, not a flood.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import threading
import time
from datetime import UTC, datetime
from typing import Any

### The role ###

# What this process is (web, bridge; cli for commands). Kafka client ids begin with it too.
_process_role = "cli"
_thread = threading.local()


def set_process_role(role: str) -> None:
    """Name this process's role in its log lines and in the Kafka clients it creates from now on."""
    global _process_role
    _process_role = role


def process_role() -> str:
    """Return this process's role."""
    return _process_role


def set_thread_role(role: str) -> None:
    """Name the current thread's role in its log lines (a thread with a job of its own, like the relay)."""
    _thread.role = role


def current_role() -> str:
    """Return the role of the current thread: its own, or else the process's."""
    return getattr(_thread, "role", None) or _process_role


### Redaction ###

REDACTED = "[redacted]"
# `token=<key>` in a query string or form body, `Token <key>` in an Authorization header.
TOKEN_PATTERN = re.compile(r"(?i)(\btoken=)[^&\s\"'<>]+|(\btoken\s+)[0-9a-z]{20,}")


def redact(text: str) -> str:
    """Replace every token in `text` with [redacted]."""
    if "oken" not in text and "OKEN" not in text:  # the common case, without a regex
        return text
    return TOKEN_PATTERN.sub(lambda m: (m.group(1) or m.group(2)) + REDACTED, text)


class RedactTokens(logging.Filter):
    """Take tokens out of a record's message, arguments and traceback before any handler formats it."""

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: the handler reports it, as it would without this filter
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


### Client errors ###


class ClientErrorsAtInfo(logging.Filter):
    """Log Django's 4xx responses (a bad token, a missing page) at INFO, not WARNING; 5xx stay as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        client_error = isinstance(status, int) and 400 <= status < 500
        if record.name == "django.request" and client_error and record.levelno > logging.INFO:
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


### Repeats ###


class KafkaRepeats(logging.Filter):
    """Let the first of identical Kafka warnings through, then one per `window` seconds saying how many were left out.

    While a broker is down, every client reports every failed reconnect
    (librdkafka's log and its error callback), a few lines a second each:
    the first line says what happened, the rest would bury everything else.
    Only WARNING and above from the Kafka loggers are merged.
    """

    PREFIXES = ("kafka.", "kafka_bridge.")
    MAX_KEYS = 1000

    def __init__(self, window: float = 10.0) -> None:
        super().__init__()
        self.window = window
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [shown at, left out since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(self.PREFIXES):
            return True
        message = record.getMessage()
        key = (record.name, record.levelno, message)
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.window:
                seen[1] += 1
                return False
            if len(self._seen) >= self.MAX_KEYS:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window}
            self._seen[key] = [now, 0]
        if seen is not None and seen[1]:
            record.msg, record.args = f"{message} ({seen[1]:.0f} more like it left out)", None
        return True


### Formats ###

# Record attributes a log call may set with `extra=`, as they appear in a JSON line.
FIELDS = ("messageId", "conversationId", "topic", "partition", "offset")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, role, message, then the FIELDS (and status) the record has."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "role": getattr(record, "role", None) or current_role(),
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        # An HTTP status: the access log's, or the one Django's request logger passes.
        status = getattr(record, "status", None) or getattr(record, "status_code", None)
        if status is not None:
            entry["status"] = status
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """A line for people: time, level, role, logger, message."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(role)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not getattr(record, "role", None):
            record.role = current_role()
        return super().format(record)


### Set-up ###


def configure(config: dict[str, Any]) -> None:
    """Apply the LOGGING setting (Django's LOGGING_CONFIG), with Python's warnings as log lines too."""
    logging.config.dictConfig(config)
    # Otherwise a warning is a bare line on stderr, in no format and with no role.
    logging.captureWarnings(True)


### daphne's access log ###

access_logger = logging.getLogger("daphne.access")
# daphne's actions (see daphne.access.AccessLogGenerator); `connecting` always comes before one of the others.
_WEBSOCKET_ACTIONS = {"connected": "WSCONNECT", "rejected": "WSREJECT", "disconnected": "WSDISCONNECT"}


def log_access(protocol: str, action: str, details: dict[str, Any]) -> None:
    """Log one of daphne's access-log actions through logging (formatted, tokens redacted).

    daphne's own access log writes to stdout unformatted, with the query string.
    """
    if not access_logger.isEnabledFor(logging.INFO):
        return
    client = details.get("client") or "-"
    if protocol == "http" and action == "complete":
        status = details.get("status")
        access_logger.info(
            '%s "%s %s" %s %s',
            client,
            details.get("method"),
            redact(str(details.get("path"))),
            status,
            details.get("size"),
            extra={"status": status},
        )
    elif protocol == "websocket" and action in _WEBSOCKET_ACTIONS:
        access_logger.info('%s "%s %s"', client, _WEBSOCKET_ACTIONS[action], redact(str(details.get("path"))))
