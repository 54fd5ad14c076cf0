"""What the web adds to its /metrics for alerts: responses by status code and its own readiness.

This module is also the URLconf of the response tests: a view that answers,
one that fails, and the project's error handlers.
"""

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.http import HttpRequest, JsonResponse
from django.urls import path
from prometheus_client import REGISTRY


def answers(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


async def fails(request: HttpRequest) -> JsonResponse:
    raise RuntimeError("a view that fails")


def not_ready(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "unavailable"}, status=503)


urlpatterns = [path("answers", answers), path("fails", fails), path("readyz", not_ready)]
handler404 = "chat_project.views.not_found"
handler500 = "chat_project.views.server_error"


def responses(code: str) -> float:
    return REGISTRY.get_sample_value("chat_http_responses_total", {"code": code}) or 0.0


@pytest.mark.urls("tests.chat_project.test_web_metrics")
@pytest.mark.parametrize("client_name", ["client", "async_client"])
async def test_every_response_is_counted_by_status_code(request, client_name):
    client = request.getfixturevalue(client_name)
    client.raise_request_exception = False  # the failure becomes the 500 a real client gets
    before = {code: responses(code) for code in ("200", "404", "500", "503")}

    async def get(url: str) -> int:
        answer = client.get(url)
        return (await answer if client_name == "async_client" else answer).status_code

    assert await get("/answers") == 200
    assert await get("/answers") == 200
    assert await get("/nowhere") == 404
    assert await get("/fails") == 500
    assert await get("/readyz") == 503  # a probe's answer: readiness, not a failed request
    after = {code: responses(code) for code in before}
    assert {code: after[code] - before[code] for code in after} == {"200": 2, "404": 1, "500": 1, "503": 0}


@pytest.fixture
def metrics_on_the_test_connection(monkeypatch, settings):
    # The outbox count on the test's own connection: a pool thread's would outlive the test database.
    monkeypatch.setattr("chat_project.metrics.db", lambda func: sync_to_async(func, thread_sensitive=True))
    settings.METRICS_ALLOWED_NETWORKS = []


def set_failing(monkeypatch, failing: dict[str, str]) -> None:
    async def readiness_failures() -> dict[str, str]:
        return failing

    monkeypatch.setattr("chat_project.metrics.readiness_failures", readiness_failures)


@pytest.mark.django_db
def test_web_ready_follows_the_readiness_checks(client, monkeypatch, metrics_on_the_test_connection):
    set_failing(monkeypatch, {})
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "\nchat_web_ready 1.0\n" in body
    set_failing(monkeypatch, {"kafka": "KafkaException"})
    body = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert "\nchat_web_ready 0.0\n" in body
    assert "chat_outbox_records 0.0" in body


@pytest.mark.django_db
def test_without_the_database_the_scrape_still_answers_not_ready(client, monkeypatch, metrics_on_the_test_connection):
    set_failing(monkeypatch, {"database": "OperationalError"})

    def outbox_depth() -> int:
        raise OperationalError("connection refused")

    monkeypatch.setattr("kafka_bridge.models.outbox_depth", outbox_depth)
    answer = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert answer.status_code == 200
    body = answer.content.decode()
    assert "\nchat_web_ready 0.0\n" in body
    assert "chat_outbox_records" not in body
    assert "chat_http_responses_total" in body
