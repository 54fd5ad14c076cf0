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
when scraped (one query).

Anyone else gets the JSON 404 of every unknown path: the endpoint is not
advertised. The address is the TCP peer's (daphne's client address, no
X-Forwarded-For): behind a proxy, list the proxy's network only if the proxy
itself keeps /metrics to itself.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from core.db import db
from core.errors import error_body
from kafka_bridge.metrics import BRIDGE_ONLY, OutboxDepthCollector

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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


def render_metrics() -> bytes:
    """Return this deployment's web metrics in Prometheus text format (queries the outbox depth)."""
    outbox = CollectorRegistry()
    outbox.register(OutboxDepthCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
        return generate_latest(processes) + generate_latest(outbox)
    web = CollectorRegistry()
    web.register(WebSeries())
    return generate_latest(web) + generate_latest(outbox)


async def metrics(request: HttpRequest) -> HttpResponse:
    """Answer the metrics to loopback and the allowed networks; 404 to anyone else."""
    if not address_allowed(request.META.get("REMOTE_ADDR"), settings.METRICS_ALLOWED_NETWORKS):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return HttpResponse(await db(render_metrics)(), content_type=CONTENT_TYPE_LATEST)
