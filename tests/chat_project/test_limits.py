"""Rates as settings write them, and the shared limiter against the real Redis."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.ratelimit import Bucket, Spend, Window, check, parse_rate


def test_rates_parse_as_at_most_n_in_any_period():
    assert parse_rate("10/15m") == Window(limit=10, seconds=900.0)
    assert parse_rate("120/min") == Window(limit=120, seconds=60.0)
    assert parse_rate("20/h") == Window(limit=20, seconds=3600.0)
    for bad in ("10", "0/s", "ten/min", "5/fortnight"):
        with pytest.raises(ImproperlyConfigured):
            parse_rate(bad)


@pytest.mark.parametrize("tight", [Window(limit=2, seconds=3600), Bucket(burst=2, interval=3600)])
def test_a_check_spends_from_every_key_or_from_none(tight):
    roomy = Window(limit=100, seconds=3600)
    first, second = f"test:{uuid.uuid4().hex}", f"test:{uuid.uuid4().hex}"
    both = [Spend(first, tight), Spend(second, roomy)]
    assert check(both).allowed and check(both).allowed
    refused = check(both)
    assert refused.denied == 1 and 3599 <= refused.wait_seconds <= 3600
    # The refused check spent nothing from the roomy key: 98 more fit there.
    assert all(check([Spend(second, roomy)]).allowed for _ in range(98))
    assert check([Spend(second, roomy)]).denied == 1
    # A refund gives one back; a reset empties the key.
    check([Spend(first, tight, "refund")])
    assert check([Spend(first, tight)]).allowed
    assert not check([Spend(first, tight)]).allowed
    check([Spend(first, tight, "reset")])
    assert check([Spend(first, tight)]).allowed
