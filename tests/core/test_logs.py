"""The log format: JSON lines with the role and the record's fields, tokens redacted, 4xx at INFO."""

from __future__ import annotations

import json
import logging
import sys
import threading

import pytest

from core import logs
from core.logs import ClientErrorsAtInfo, JsonFormatter, PlainFormatter, RedactTokens, redact

TOKEN = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"


def record(msg: str, *args: object, level: int = logging.INFO, name: str = "chat.test", **extra: object):
    rec = logging.LogRecord(name, level, __file__, 1, msg, args or None, None)
    rec.__dict__.update(extra)
    return rec


@pytest.fixture
def role():
    before = logs.process_role()
    logs.set_process_role("bridge")
    yield
    logs.set_process_role(before)


def test_json_line_has_the_contract_fields_and_the_known_extras(role):
    line = JsonFormatter().format(
        record("Dead-lettering %s@%s/%s", "typing-events", 2, 17, topic="typing-events", partition=2, offset=17)
    )
    entry = json.loads(line)
    assert list(entry)[:5] == ["time", "level", "logger", "role", "message"]
    assert entry["time"].endswith("+00:00") and "T" in entry["time"]
    assert (entry["level"], entry["logger"], entry["role"]) == ("INFO", "chat.test", "bridge")
    assert entry["message"] == "Dead-lettering typing-events@2/17"
    assert (entry["topic"], entry["partition"], entry["offset"]) == ("typing-events", 2, 17)
    # Fields a call did not pass are absent, not null.
    assert "messageId" not in entry and "conversationId" not in entry
    both = json.loads(JsonFormatter().format(record("x", messageId="m-1", conversationId="c-1")))
    assert (both["messageId"], both["conversationId"]) == ("m-1", "c-1")


def test_json_line_is_one_line_with_the_traceback_and_the_status():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        rec = record("failed", level=logging.ERROR)
        rec.exc_info = sys.exc_info()
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    entry = json.loads(line)
    assert "Traceback" in entry["exception"] and "ValueError: bad" in entry["exception"]
    # Django's request logger passes status_code; the access log passes status.
    assert json.loads(JsonFormatter().format(record("Unauthorized: /api/x", status_code=401)))["status"] == 401
    assert json.loads(JsonFormatter().format(record("GET /api/x 200", status=200)))["status"] == 200
    # Something that is not JSON (the request object Django passes) is not a field.
    assert "request" not in json.loads(JsonFormatter().format(record("x", request=object())))


def test_a_thread_with_a_role_of_its_own_names_it(role):
    lines: list[str] = []

    def relay() -> None:
        logs.set_thread_role("relay")
        lines.append(JsonFormatter().format(record("from the relay")))

    thread = threading.Thread(target=relay)
    thread.start()
    thread.join()
    assert json.loads(lines[0])["role"] == "relay"
    # Other threads keep the process's role.
    assert json.loads(JsonFormatter().format(record("main")))["role"] == "bridge"
    assert PlainFormatter().format(record("main")).split(" ")[3] == "[bridge]"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /ws/chat/?token={TOKEN} 101",
        f"GET /api/users/?limit=5&token={TOKEN}&x=1",
        f"Authorization: Token {TOKEN}",
        f"headers: {{'authorization': 'token {TOKEN}'}}",
        f"TOKEN={TOKEN}",
    ],
)
def test_tokens_are_redacted(text):
    assert TOKEN not in redact(text)
    assert logs.REDACTED in redact(text)


def test_other_text_is_left_alone():
    for text in ("Serving 12 token lookups failed", "GET /api/users/?limit=5 200", "no tokens here"):
        assert redact(text) == text


def test_filter_redacts_arguments_and_tracebacks():
    rec = record("%s %s", "GET", f"/ws/chat/?token={TOKEN}")
    try:
        raise RuntimeError(f"could not open /?token={TOKEN}")
    except RuntimeError:
        rec.exc_info = sys.exc_info()
    assert RedactTokens().filter(rec)
    formatted = JsonFormatter().format(rec)
    assert TOKEN not in formatted
    assert "GET /ws/chat/?token=[redacted]" in json.loads(formatted)["message"]
    # A malformed call is left to the handler to report, not raised in the caller.
    assert RedactTokens().filter(record("%d", "not a number"))


def test_client_errors_are_info_and_server_errors_stay_errors():
    quiet = ClientErrorsAtInfo()
    for status in (401, 403, 404):
        rec = record("Unauthorized: /api/x", level=logging.WARNING, name="django.request", status_code=status)
        assert quiet.filter(rec)
        assert (rec.levelno, rec.levelname) == (logging.INFO, "INFO")
    server = record("Internal Server Error: /api/x", level=logging.ERROR, name="django.request", status_code=500)
    assert quiet.filter(server) and server.levelname == "ERROR"
    # Only Django's request logger: another logger's warning about a 4xx is its own call.
    other = record("odd", level=logging.WARNING, name="chat.test", status_code=404)
    assert quiet.filter(other) and other.levelname == "WARNING"


def test_identical_kafka_warnings_are_merged_and_counted(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: clock[0])
    repeats = logs.KafkaRepeats(window=10.0)
    refused = "FAIL [chat-bridge-chat-messages#consumer-3]: Connect to 127.0.0.1:9092 failed: Connection refused"

    def passes(msg: str, level: int = logging.WARNING, name: str = "kafka.librdkafka") -> logging.LogRecord | None:
        rec = record(msg, level=level, name=name)
        return rec if repeats.filter(rec) else None

    assert passes(refused) is not None  # the first one says what happened
    for _ in range(50):
        clock[0] += 0.05
        assert passes(refused) is None
    # A different warning, the same one from another logger, an INFO line and other loggers all pass meanwhile.
    assert passes("Kafka consumer error on typing-events: _TRANSPORT", name="kafka_bridge.loop") is not None
    assert passes(refused, name="kafka_bridge.produce.clients") is not None
    assert passes(refused, level=logging.INFO) is not None
    assert passes(refused, name="django.request") is not None
    assert passes(refused, name="django.request") is not None
    clock[0] += 10.0
    shown = passes(refused)
    assert shown is not None and shown.getMessage() == f"{refused} (50 more like it left out)"
    assert passes(refused) is None
