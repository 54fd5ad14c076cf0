"""The web's `/metrics`: Prometheus text format, for loopback and METRICS_ALLOWED_CIDRS only.

`manage.py serve` may run several daphne processes on one port, and a
scrape reaches only one of them. So the serve parent gives its children a
fresh PROMETHEUS_MULTIPROC_DIR (see web_processes.py): each process writes
its metric values to files there (prometheus_client's multiprocess mode),
and whichever process answers the scrape sums them all: counters and
histograms over every process that ever ran under this parent, the open
sockets over the live ones. A single process serves its own registry, less
the bridge's series (kafka_bridge_records, ...): a web process imports them
with the Kafka code but never counts them. chat_outbox_records is counted
when scraped (one query), and chat_web_ready
is what /readyz would answer at that moment (its checks run for the scrape).

chat_http_responses_total counts the web's HTTP responses by status code
(`count_responses`, the first middleware, so that the other middleware's and
the views' errors count too). The probes and the scrape are left out: a
503 from /readyz is readiness, which chat_web_ready shows, not a failed
request. WebSocket handshakes are not Django's HTTP responses.

Anyone else gets the JSON 404 of every unknown path: the endpoint is not
advertised. The address is the TCP peer's (daphne's client address, no
X-Forwarded-For): behind a proxy, list the proxy's network only if the proxy
itself keeps /metrics to itself.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.utils.decorators import sync_and_async_middleware
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from core.db import db
from core.errors import error_body
from kafka_bridge.metrics import BRIDGE_ONLY, OutboxDepthCollector

from .health import readiness_failures

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HTTP_RESPONSES = Counter(
    "chat_http_responses",
    "HTTP responses the web sent, by status code (WebSocket handshakes are not counted).",
    ["code"],
)
# Operational endpoints, not requests of users (see the module docstring).
UNCOUNTED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@sync_and_async_middleware
def count_responses(
    get_response: Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]],
) -> Callable[[HttpRequest], HttpResponseBase | Awaitable[HttpResponseBase]]:
    """Count each response by status code (the first middleware: it sees the others' errors as 500s)."""
    if iscoroutinefunction(get_response):

        async def count_async(request: HttpRequest) -> HttpResponseBase:
            response = await get_response(request)
            if request.path not in UNCOUNTED_PATHS:
                HTTP_RESPONSES.labels(str(response.status_code)).inc()
            return response

        return count_async

    def count(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        if request.path not in UNCOUNTED_PATHS:
            HTTP_RESPONSES.labels(str(response.status_code)).inc()  # type: ignore[union-attr]
        return response  # type: ignore[return-value]

    return count


class ReadyCollector(Collector):
    """chat_web_ready: 1 when the process that answers the scrape is ready (as /readyz would say), else 0."""

    def __init__(self, ready: bool) -> None:
        self.ready = ready

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "chat_web_ready",
            "1 when the database, the channel layer and Kafka answer this web process (/readyz 200), else 0.",
            value=1 if self.ready else 0,
        )


def address_allowed(address: str | None, networks: Iterable[Network]) -> bool:
    """Return whether a client address is loopback or in one of the networks (an unparsable one is not)."""
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket is 10.0.0.1
    return ip.is_loopback or any(ip in network for network in networks)


class WebSeries(Collector):
    """This process's metrics (the default registry) without the series only a bridge counts."""

    def collect(self) -> Iterator[Metric]:
        bridge = {family.name for metric in BRIDGE_ONLY for family in metric.describe()}
        return (family for family in REGISTRY.collect() if family.name not in bridge)


def render_metrics(*, ready: bool) -> bytes:
    """Return this deployment's web metrics in Prometheus text format (queries the outbox depth).

    Without the database the outbox depth is left out, and the rest is still
    served: chat_web_ready 0 then tells why, where a failed scrape would not.
    """
    readiness = CollectorRegistry()
    readiness.register(ReadyCollector(ready))
    outbox = CollectorRegistry()
    outbox.register(OutboxDepthCollector())
    try:
        depth = generate_latest(outbox)
    except DatabaseError as exc:
        logger.warning("Metrics without chat_outbox_records: the outbox could not be counted (%r)", exc)
        depth = b""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        return generate_latest(processes) + generate_latest(readiness) + depth
    web = CollectorRegistry()
    web.register(WebSeries())
    return generate_latest(web) + generate_latest(readiness) + depth


async def metrics(request: HttpRequest) -> HttpResponse:
    """Answer the metrics to loopback and the allowed networks; 404 to anyone else."""
    if not address_allowed(request.META.get("REMOTE_ADDR"), settings.METRICS_ALLOWED_NETWORKS):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    ready = not await readiness_failures()
    return HttpResponse(await db(render_metrics)(ready=ready), content_type=CONTENT_TYPE_LATEST)
