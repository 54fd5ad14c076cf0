"""The operations page in the admin: the broker, lag, dead letters, outbox depth and throughput.

Staff see it at /admin/kafka/ (linked from the admin's home page). It reads
the Kafka report (report.py) through the same functions as `manage.py
kafka_status`, and the messages sent per minute through the selector the
project's URLs hand in. Replaying dead letters is for superusers, after a
confirmation page, and replays through the same function as `dead_letters
replay`: only the letters the confirmation showed.

The views are async: the broker calls (up to seconds when it is down, longer
for a replay) run on threads of their own, never on the one thread that
every synchronous view of this process shares.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from functools import partial, wraps
from typing import Any

from asgiref.sync import sync_to_async
from confluent_kafka import KafkaException
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from ..consume.registry import topic_named
from ..models import outbox_depth
from ..topics import Topic
from .dead_letters import read_dead_letters, replay_dead_letters_before
from .report_reader import broker_report

logger = logging.getLogger(__name__)

# A page waits this long for the broker before it says unreachable.
PAGE_TIMEOUT_SECONDS = 3.0
THROUGHPUT_MINUTES = 10
# The confirmation page lists this many of the letters it replays, and counts the rest.
CONFIRM_LIST_LIMIT = 50

STATUS_URL_NAME = "admin-kafka-status"
REPLAY_URL_NAME = "admin-kafka-replay"


AsyncView = Callable[..., Awaitable[HttpResponse]]
# Messages sent in each of the last `minutes` minutes, oldest first (the current one so far).
MessagesPerMinute = Callable[..., list[tuple[datetime, int]]]


def staff_view(view: AsyncView) -> AsyncView:
    """Serve an async view to active staff only, as the admin's own pages are (others go to its login)."""

    @wraps(view)
    async def inner(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = await request.auser()
        if not (user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return await view(request, *args, **kwargs)

    return csrf_protect(never_cache(inner))


async def kafka_status_page(request: HttpRequest, *, messages_per_minute: MessagesPerMinute) -> HttpResponse:
    """Show the broker, topics, lag per group and partition, dead letters, outbox depth and throughput."""
    report, depth, throughput, context = await asyncio.gather(
        asyncio.to_thread(broker_report, timeout=PAGE_TIMEOUT_SECONDS),
        sync_to_async(outbox_depth)(),
        sync_to_async(_throughput)(messages_per_minute),
        sync_to_async(admin.site.each_context)(request),
    )
    context.update(
        {
            "title": "Kafka status",
            # The page and its template call it the status; it is the Kafka report.
            "status": replace(report, outbox_depth=depth),
            "throughput": throughput,
            "can_replay": await _can_replay(request),
        }
    )
    return TemplateResponse(request, "admin/kafka_bridge/status.html", context)


async def replay_page(request: HttpRequest, topic_name: str) -> HttpResponse:
    """Show the waiting dead letters of a topic and, on POST, replay those that were shown."""
    if not await _can_replay(request):
        raise PermissionDenied
    try:
        topic = topic_named(topic_name)
    except KeyError:
        raise Http404(f"No topic {topic_name!r}") from None
    back = HttpResponseRedirect(reverse(STATUS_URL_NAME))
    if request.method == "POST":
        confirmed = parse_ends(request.POST.get("ends", ""))
        if confirmed is None:
            messages.error(request, "The confirmation was malformed; nothing was replayed.")
            return back
        return await _replay(request, topic, confirmed, back)
    try:
        waiting = await asyncio.to_thread(lambda: list(read_dead_letters(topic)))
    except (KafkaException, RuntimeError) as exc:
        logger.warning("Could not read %s: %s", topic.dead_letter, exc)
        messages.error(request, f"Could not read {topic.dead_letter}: {exc}")
        return back
    ends: dict[int, int] = {}
    for letter in waiting:
        ends[letter.partition] = max(ends.get(letter.partition, 0), letter.offset + 1)
    context = await sync_to_async(admin.site.each_context)(request)
    context.update(
        {
            "title": f"Replay the dead letters of {topic.name}",
            "topic": topic,
            "letters": waiting[:CONFIRM_LIST_LIMIT],
            "count": len(waiting),
            "more": max(len(waiting) - CONFIRM_LIST_LIMIT, 0),
            "ends": format_ends(ends),
        }
    )
    return TemplateResponse(request, "admin/kafka_bridge/replay_confirm.html", context)


async def _replay(request: HttpRequest, topic: Topic, ends: dict[int, int], back: HttpResponse) -> HttpResponse:
    try:
        replayed = await asyncio.to_thread(replay_dead_letters_before, topic, ends)
    except (KafkaException, RuntimeError) as exc:
        logger.warning("Replay of %s failed: %s", topic.dead_letter, exc)
        messages.error(request, f"Could not replay {topic.dead_letter}: {exc}")
        return back
    if replayed:
        user = await request.auser()
        logger.info("%s replayed %d dead letter(s) to %s", user.get_username(), replayed, topic.name)
        messages.success(request, f"Replayed {replayed} dead letter(s) to {topic.name}.")
    else:
        messages.warning(request, f"Nothing was waiting in {topic.dead_letter}; nothing was replayed.")
    return back


async def _can_replay(request: HttpRequest) -> bool:
    user = await request.auser()
    return user.is_active and user.is_superuser


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


def _throughput(messages_per_minute: MessagesPerMinute) -> list[dict[str, object]]:
    """Return the messages of each of the last minutes, with their rate per second, newest first."""
    now = timezone.now()
    rows = []
    for minute, count in messages_per_minute(minutes=THROUGHPUT_MINUTES, now=now):
        # The current minute has lasted only so far.
        seconds = min(max((now - minute).total_seconds(), 1.0), 60.0)
        rows.append({"minute": minute, "messages": count, "per_second": count / seconds})
    return rows[::-1]


def admin_urls(*, messages_per_minute: MessagesPerMinute) -> list[URLPattern]:
    """Return the page's URLs, behind the admin's staff login; list them before the admin's own.

    `messages_per_minute` counts the messages sent (the chat's own selector):
    this package knows no app, the project's URLs hand it in.
    """
    status_page = partial(kafka_status_page, messages_per_minute=messages_per_minute)
    # django-stubs types views as synchronous; Django serves async views as well.
    return [
        path("admin/kafka/", staff_view(status_page), name=STATUS_URL_NAME),  # type: ignore[arg-type]
        path(
            "admin/kafka/dead-letters/<str:topic_name>/replay/",
            staff_view(replay_page),  # type: ignore[arg-type]
            name=REPLAY_URL_NAME,
        ),
    ]


# The admin's home page links the page.
admin.site.index_template = "admin/kafka_bridge/index.html"
