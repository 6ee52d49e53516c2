"""One request rate to PurelyMail, shared by every purelyops process through Redis.

PurelyMail documents no rate limit, but its clients keep to about one request a
second. The web process, the workers and the scheduler each build a `Throttle` on the
same Redis key and call `acquire()` before every request, so together they hold that
rate. The window lives in Redis (a moving window from the `limits` library), so it
survives restarts and needs no coordinator.
"""

from __future__ import annotations

import random
import time

import redis
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter


class ThrottleError(Exception):
    """A slot to call PurelyMail could not be taken."""


class ThrottleUnavailable(ThrottleError):
    """Redis, where the shared rate lives, cannot be reached."""


class ThrottleTimeout(ThrottleError):
    """No slot became free within the time the caller was willing to wait."""


class Throttle:
    """At most `burst` requests in any `burst / rate_per_s` seconds, across processes.

    The window is whole seconds (what `limits` supports): `burst / rate_per_s` is
    rounded, and the number of slots adjusted so the long-run rate stays `rate_per_s`.
    With the defaults that is 5 requests in any 5 seconds.
    """

    def __init__(
        self, redis: redis.Redis, key: str, rate_per_s: float = 1.0, burst: int = 5
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        window_s = max(1, round(burst / rate_per_s))
        self.slots = max(1, round(rate_per_s * window_s))
        self.window_s = window_s
        self._where = _describe(redis)
        self._item = RateLimitItemPerSecond(self.slots, window_s, namespace="throttle")
        storage = RedisStorage("redis://", connection_pool=redis.connection_pool, key_prefix=key)
        self._limiter = MovingWindowRateLimiter(storage)

    def acquire(self, timeout: float = 30) -> None:
        """Block until a slot is free and take it.

        Raises `ThrottleTimeout` at once if the next free slot is further away than
        `timeout` seconds, and `ThrottleUnavailable` if Redis cannot be reached.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._limiter.hit(self._item):
                    return
                reset_at = self._limiter.get_window_stats(self._item).reset_time
            except redis.RedisError as error:
                raise ThrottleUnavailable(
                    f"cannot reach Redis at {self._where} ({type(error).__name__})"
                ) from None
            # A little jitter so that processes woken together do not collide again.
            wait = max(reset_at - time.time(), 0.0) + random.uniform(0.001, 0.02)
            if time.monotonic() + wait > deadline:
                raise ThrottleTimeout(f"no PurelyMail request slot free within {timeout:g} s")
            time.sleep(wait)


def _describe(client: redis.Redis) -> str:
    """Where a Redis client connects, for messages: host:port/db, never credentials."""
    kwargs = client.connection_pool.connection_kwargs
    if kwargs.get("path"):
        return f"unix:{kwargs['path']}/{kwargs.get('db', 0)}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
