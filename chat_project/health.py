"""Liveness and readiness endpoints for orchestrators and operators."""

from __future__ import annotations

import asyncio
import functools
import logging

import redis.asyncio as redis
from asgiref.sync import sync_to_async
from confluent_kafka.admin import AdminClient
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from kafka_bridge.consume.registry import topics
from kafka_bridge.produce.clients import admin_client

logger = logging.getLogger(__name__)

CHECK_TIMEOUT_SECONDS = 3.0


async def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process is alive."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _ping(url: str) -> None:
    client = redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _check_channel_layer() -> None:
    # Every shard: with one away, the channels and groups hashed to it carry nothing.
    await asyncio.gather(*(_ping(url) for url in settings.REDIS_URLS))


@functools.cache
def _kafka_admin() -> AdminClient:
    # One client per process: probes come every few seconds, and a client is threads and sockets.
    return admin_client("chat-web-readiness")


class KafkaTopicsUnavailable(Exception):
    """The broker answers, but not with every topic the web process writes to: missing, or not allowed to its user."""


def _check_kafka() -> None:
    admin = _kafka_admin()
    # A broker with an authorizer leaves out of the answer the topics this client may not use.
    present = admin.list_topics(timeout=CHECK_TIMEOUT_SECONDS).topics
    absent = [topic.name for topic in topics() if topic.name not in present]
    if absent:
        # Asked by name, it says why: not authorized, or unknown (kafka_topics not run).
        error = admin.list_topics(absent[0], timeout=CHECK_TIMEOUT_SECONDS).topics[absent[0]].error
        others = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise KafkaTopicsUnavailable(f"{absent[0]}: {error.str() if error else 'absent'}{others}")


async def readiness_failures() -> dict[str, str]:
    """Check the database, the channel layer and Kafka; return each failing check with its error's name."""
    checks = {
        "database": sync_to_async(_check_database)(),
        "channel_layer": _check_channel_layer(),
        "kafka": asyncio.to_thread(_check_kafka),
    }
    results = await asyncio.gather(
        *(asyncio.wait_for(c, CHECK_TIMEOUT_SECONDS + 1) for c in checks.values()), return_exceptions=True
    )
    failing = {}
    for name, result in zip(checks, results, strict=True):
        if isinstance(result, BaseException):
            logger.warning("Readiness check %s failed: %r", name, result)
            failing[name] = type(result).__name__
    return failing


async def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database, the channel layer and Kafka answer; 503 naming the failures."""
    failing = await readiness_failures()
    if failing:
        return JsonResponse({"status": "unavailable", "failing": failing}, status=503)
    return JsonResponse({"status": "ok"})
