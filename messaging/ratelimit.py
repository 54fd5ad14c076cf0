"""A token bucket: a burst of `capacity`, then `rate` per second."""

from __future__ import annotations

import time


class TokenBucket:
    """Allow a burst of `capacity` actions, refilled at `rate` per second."""

    def __init__(self, capacity: int, rate: float) -> None:
        self.capacity = float(capacity)
        self.rate = rate
        self.tokens = float(capacity)
        self.updated = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one; return whether the action may go ahead."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def seconds_until_next(self) -> float:
        """Return how long until `take` would succeed (0 when it would now)."""
        missing = 1 - self.tokens
        return max(0.0, missing / self.rate) if self.rate > 0 else float("inf")
