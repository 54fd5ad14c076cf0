"""The operations page in the admin: the broker, lag, dead letters, outbox depth and throughput.

Staff see it at /admin/kafka/ (linked from the admin's home page). It reads
`kafka_bridge.status`, the same functions as `manage.py kafka_status`, and
the messages table for the messages sent per minute. Replaying dead letters
is for superusers, after a confirmation page, and replays through the same
function as `dead_letters replay`: only the letters the confirmation showed.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaException
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from kafka_bridge.dead_letters import read_dead_letters, replay_dead_letters_before
from kafka_bridge.status import kafka_status
from kafka_bridge.topics import TOPICS_BY_NAME, Topic
from messaging.selectors import messages_per_minute

logger = logging.getLogger(__name__)

# A page waits this long for the broker before it says unreachable.
PAGE_TIMEOUT_SECONDS = 3.0
THROUGHPUT_MINUTES = 10
# The confirmation page lists this many of the letters it replays, and counts the rest.
CONFIRM_LIST_LIMIT = 50

STATUS_URL_NAME = "admin-kafka-status"
REPLAY_URL_NAME = "admin-kafka-replay"


def kafka_status_page(request: HttpRequest) -> HttpResponse:
    """Show the broker, topics, lag per group and partition, dead letters, outbox depth and throughput."""
    status = kafka_status(timeout=PAGE_TIMEOUT_SECONDS)
    context = {
        **admin.site.each_context(request),
        "title": "Kafka status",
        "status": status,
        "throughput": _throughput(),
        "can_replay": _can_replay(request),
    }
    return TemplateResponse(request, "admin/kafka_bridge/status.html", context)


def replay_page(request: HttpRequest, topic_name: str) -> HttpResponse:
    """Show the waiting dead letters of a topic and, on POST, replay those that were shown."""
    if not _can_replay(request):
        raise PermissionDenied
    topic = TOPICS_BY_NAME.get(topic_name)
    if topic is None:
        raise Http404(f"No topic {topic_name!r}")
    back = HttpResponseRedirect(reverse(STATUS_URL_NAME))
    if request.method == "POST":
        ends = parse_ends(request.POST.get("ends", ""))
        if ends is None:
            messages.error(request, "The confirmation was malformed; nothing was replayed.")
            return back
        return _replay(request, topic, ends, back)
    try:
        waiting = list(read_dead_letters(topic))
    except (KafkaException, RuntimeError) as exc:
        logger.warning("Could not read %s: %s", topic.dead_letter, exc)
        messages.error(request, f"Could not read {topic.dead_letter}: {exc}")
        return back
    ends: dict[int, int] = {}
    for letter in waiting:
        ends[letter.partition] = max(ends.get(letter.partition, 0), letter.offset + 1)
    context = {
        **admin.site.each_context(request),
        "title": f"Replay the dead letters of {topic.name}",
        "topic": topic,
        "letters": waiting[:CONFIRM_LIST_LIMIT],
        "count": len(waiting),
        "more": max(len(waiting) - CONFIRM_LIST_LIMIT, 0),
        "ends": format_ends(ends),
    }
    return TemplateResponse(request, "admin/kafka_bridge/replay_confirm.html", context)


def _replay(request: HttpRequest, topic: Topic, ends: dict[int, int], back: HttpResponse) -> HttpResponse:
    try:
        replayed = replay_dead_letters_before(topic, ends)
    except (KafkaException, RuntimeError) as exc:
        logger.warning("Replay of %s failed: %s", topic.dead_letter, exc)
        messages.error(request, f"Could not replay {topic.dead_letter}: {exc}")
        return back
    if replayed:
        logger.info("%s replayed %d dead letter(s) to %s", request.user, replayed, topic.name)
        messages.success(request, f"Replayed {replayed} dead letter(s) to {topic.name}.")
    else:
        messages.warning(request, f"Nothing was waiting in {topic.dead_letter}; nothing was replayed.")
    return back


def _can_replay(request: HttpRequest) -> bool:
    return request.user.is_active and request.user.is_superuser


def format_ends(ends: dict[int, int]) -> str:
    """Return partition end offsets as `0:5,2:3`."""
    return ",".join(f"{partition}:{offset}" for partition, offset in sorted(ends.items()))


def parse_ends(raw: str) -> dict[int, int] | None:
    """Parse `0:5,2:3` into {partition: end offset}; None when malformed."""
    ends: dict[int, int] = {}
    for item in filter(None, raw.split(",")):
        partition, sep, offset = item.partition(":")
        if not (sep and partition.isdigit() and offset.isdigit()):
            return None
        ends[int(partition)] = int(offset)
    return ends or None


def _throughput() -> list[dict[str, object]]:
    """Return the messages of each of the last minutes, with their rate per second, newest first."""
    now = timezone.now()
    rows = []
    for minute, count in messages_per_minute(minutes=THROUGHPUT_MINUTES, now=now):
        # The current minute has lasted only so far.
        seconds = min(max((now - minute).total_seconds(), 1.0), 60.0)
        rows.append({"minute": minute, "messages": count, "per_second": count / seconds})
    return rows[::-1]


def admin_urls() -> list[URLPattern]:
    """Return the page's URLs, behind the admin's staff login; list them before the admin's own."""
    return [
        path("admin/kafka/", admin.site.admin_view(kafka_status_page), name=STATUS_URL_NAME),
        path(
            "admin/kafka/dead-letters/<str:topic_name>/replay/",
            admin.site.admin_view(replay_page),
            name=REPLAY_URL_NAME,
        ),
    ]


# The admin's home page links the page.
admin.site.index_template = "admin/kafka_bridge/index.html"
