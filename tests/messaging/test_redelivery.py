"""Which lags are resent, with the clock passed in (the database side is in tests/integration)."""

import uuid

from messaging.redelivery import LagTracker
from messaging.watermarks import Marks, Statuses, floors

C = uuid.uuid4()


def test_a_lag_is_resent_once_it_lasted_the_bound_and_again_only_after_another():
    tracker = LagTracker(after_seconds=10)
    assert tracker.due([(1, C, 3, 5)], now=0) == []  # first seen
    assert tracker.due([(1, C, 3, 6)], now=9) == []  # not long enough; a newer message changes nothing
    assert tracker.due([(1, C, 3, 6)], now=10) == [(1, C, 3, 5)]  # what was missing at first sight
    assert tracker.due([(1, C, 3, 6)], now=15) == []  # resent just now: wait another bound
    assert tracker.due([(1, C, 3, 6)], now=20) == [(1, C, 3, 6)]


def test_a_client_that_confirms_in_time_is_never_sent_repeats():
    tracker = LagTracker(after_seconds=10)
    tracker.due([(1, C, 3, 5), (2, C, 0, 5)], now=0)
    # User 1 confirmed up to 5 (a new message 6 is in flight); user 2 confirmed nothing.
    assert tracker.due([(1, C, 5, 6), (2, C, 0, 6)], now=10) == [(2, C, 0, 5)]
    assert tracker.due([(1, C, 5, 6)], now=19) == []
    # No longer lagging: forgotten.
    assert tracker.due([], now=30) == [] and tracker.since == {}


def test_a_watermark_that_moves_is_a_slow_path_and_waits_but_one_held_by_a_gap_is_resent():
    tracker = LagTracker(after_seconds=10)
    tracker.due([(1, C, 0, 100), (2, C, 0, 100)], now=0)
    # User 1's client keeps confirming, far behind (the live path is slow); user 2's is stuck at a gap.
    assert tracker.due([(1, C, 40, 150), (2, C, 0, 150)], now=6) == []
    assert tracker.due([(1, C, 90, 200), (2, C, 0, 200)], now=12) == [(2, C, 0, 100)]
    assert tracker.due([(1, C, 140, 250)], now=24) == []


def test_floors_give_each_sender_the_smallest_watermark_of_the_others():
    marks = {1: Marks(delivered=5, read=2), 2: Marks(delivered=3, read=3), 3: Marks(delivered=9, read=1)}
    delivered = floors(marks, "DELIVERED")
    assert [delivered.of(u) for u in (1, 2, 3)] == [3, 5, 3]  # user 2 alone at the bottom: 5 for them
    statuses = Statuses.of_marks(marks)
    assert statuses.status(sender_id=2, seq=1) == "READ"  # users 1 and 3 have read up to 1 at least
    assert statuses.status(sender_id=2, seq=2) == "DELIVERED"
    assert statuses.status(sender_id=1, seq=4) == "SENT"
    # Two at the bottom: nobody's aggregate is above it.
    tied = floors({1: Marks(2, 0), 2: Marks(2, 0), 3: Marks(7, 0)}, "DELIVERED")
    assert [tied.of(u) for u in (1, 2, 3)] == [2, 2, 2]
