"""Per-caller request rate limits: a token bucket per key, driven by an injected clock.

Each key (an identity's subject) has a bucket holding up to ``burst`` tokens, refilled at
``rate_per_s``; a request takes one token. :meth:`RateLimiter.take` answers how long to wait
instead of sleeping, so the transport can send ``429`` with ``Retry-After``.

Memory is bounded by ``max_keys``: buckets are kept in least-recently-used order and the least
recently used is dropped when a new key arrives at the limit. That bucket is the one that has
refilled longest, usually full already, and a full bucket is the same as no bucket at all. An
evicted bucket that was not full starts over full, so a caller gains at most ``burst`` requests,
and only after ``max_keys`` other callers were seen in between.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from modelport.core.clock import Clock
from modelport.core.errors import ConfigError, RateLimited
from modelport.core.settings import LimitSettings

__all__ = ["RateLimiter"]

# A token refilled over a short interval between two large clock readings comes to 0.999999...
# (float rounding); count that as a whole token, or a caller at exactly the rate is refused.
_ONE = 1.0 - 1e-5


class RateLimiter:
    """Token buckets per key.

    Args:
        rate_per_s: Tokens added per second; ``0`` turns limiting off.
        burst: Bucket size: how many requests may arrive at once.
        clock: Time source (``monotonic`` only).
        max_keys: Most buckets kept at once.

    Raises:
        ConfigError: A negative rate, or a burst or ``max_keys`` below 1.
    """

    def __init__(
        self, rate_per_s: float, burst: int, clock: Clock, *, max_keys: int = 100_000
    ) -> None:
        if rate_per_s < 0:
            raise ConfigError(f"rate limit must be >= 0 requests per second, got {rate_per_s}")
        if burst < 1:
            raise ConfigError(f"rate limit burst must be >= 1, got {burst}")
        if max_keys < 1:
            raise ConfigError(f"rate limiter max_keys must be >= 1, got {max_keys}")
        self.rate_per_s = float(rate_per_s)
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        # key -> (tokens, monotonic time of the last update); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, limits: LimitSettings, clock: Clock, *, max_keys: int = 100_000
    ) -> RateLimiter:
        """Build the limiter configured by ``security.limits``."""
        return cls(limits.rate_per_s, limits.burst, clock, max_keys=max_keys)

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all."""
        return self.rate_per_s > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Take one token from ``key``'s bucket.

        Returns:
            ``0.0`` when the request is allowed (a token was taken); otherwise the seconds
            until a token will be available (nothing was taken).
        """
        if self.rate_per_s == 0:
            return 0.0
        with self._lock:
            now = self._clock.monotonic()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._buckets.popitem(last=False)
                tokens = float(self.burst)
            else:
                self._buckets.move_to_end(key)
                held, then = bucket
                tokens = min(float(self.burst), held + max(0.0, now - then) * self.rate_per_s)
            if tokens >= _ONE:
                self._buckets[key] = (max(0.0, tokens - 1.0), now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate_per_s

    def check(self, key: str) -> None:
        """Take one token from ``key``'s bucket or refuse.

        Raises:
            RateLimited: The bucket is empty; ``retry_after`` says how long to wait.
        """
        wait = self.take(key)
        if wait > 0.0:
            raise RateLimited(
                f"rate limit exceeded for {key}: {self.rate_per_s:g} requests/s, burst "
                f"{self.burst}; retry in {wait:.3f} s",
                retry_after=wait,
            )
