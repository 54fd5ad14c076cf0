"""The bridge's /readyz follows the broker: 503 once its loops lose their partitions, 200 once they are back."""

from __future__ import annotations

import pytest
import requests

from tests.support.stack import Stack
from tests.support.waiting import wait_until

from .test_faults import kafka

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def readyz(bridge_http: str) -> tuple[int, dict]:
    answer = requests.get(f"{bridge_http}/readyz", timeout=10)
    return answer.status_code, answer.json()


def test_bridge_readyz_goes_503_when_the_broker_is_gone_and_200_when_it_is_back(fault_stack: Stack):
    bridge = fault_stack.start_bridge()
    # Positive control.
    wait_until(lambda: readyz(bridge.http)[0] == 200, 60, "the bridge never became ready", every=0.5)
    loops = set(readyz(bridge.http)[1]["loops"])
    assert loops == {
        "chat-messages",
        "message-status-events",
        "typing-events",
        "notifications",
        "offline-notifications",
    }
    try:
        kafka("stop")
        # The loops still poll (librdkafka answers without a broker); their groups'
        # sessions expire after session.timeout.ms and the partitions are taken back.
        wait_until(lambda: readyz(bridge.http)[0] == 503, 90, "/readyz stayed 200 with the broker gone", every=0.5)
        status, body = readyz(bridge.http)
        assert status == 503 and body["status"] == "unavailable"
        assert all(reason.startswith("holds no partition") for reason in body["failing"].values()), body
        assert requests.get(f"{bridge.http}/healthz", timeout=10).status_code == 200  # alive all the same
    finally:
        kafka("start")
    wait_until(lambda: readyz(bridge.http)[0] == 200, 120, "/readyz did not come back with the broker", every=0.5)
    bridge.kill()
    with pytest.raises(requests.ConnectionError):  # a dead bridge answers nothing: a probe sees it at once
        requests.get(f"{bridge.http}/readyz", timeout=10)
