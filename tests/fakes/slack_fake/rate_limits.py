"""Slack's rate limits as the fake applies them: a sliding window per method (per channel for
chat.postMessage). Over the limit is HTTP 429 with `Retry-After`; `rate_scale` tightens
every window and `force_ratelimit` forces one."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Window:
    """At most `limit` calls in any `seconds`-long sliding window."""

    limit: int
    seconds: float


TIER_1 = (Window(5, 60.0),)  # "1+ per minute"; Slack tolerates small bursts (guess: 5)
TIER_2 = (Window(20, 60.0),)
TIER_3 = (Window(50, 60.0),)
TIER_4 = (Window(100, 60.0),)
# chat.postMessage: about 1 per second per channel, with short bursts (guess: 3 in a second,
# 70 in a minute).
POST_MESSAGE = (Window(3, 1.0), Window(70, 60.0))

RATE_LIMITS: dict[str, tuple[Window, ...]] = {
    "chat.postMessage": POST_MESSAGE,
    "chat.update": TIER_3,
    "chat.postEphemeral": TIER_4,
    "views.open": TIER_4,
    "views.update": TIER_4,
    "views.push": TIER_4,
    "views.publish": TIER_4,
    "users.info": TIER_4,
    "usergroups.users.list": TIER_2,
    "auth.test": TIER_4,
    "files.getUploadURLExternal": TIER_4,
    "files.completeUploadExternal": TIER_4,
    "apps.connections.open": TIER_1,
}


def scaled(window: Window, scale: float) -> Window:
    """A window `scale` times tighter: `scale` times fewer calls in a window `scale` times
    shorter (never below one call; the sustained rate is kept)."""
    if scale == 1.0:
        return window
    limit = max(1, round(window.limit / scale))
    return Window(limit, window.seconds * limit / window.limit)


class RateLimits:
    """FakeSlack's rate-limit bookkeeping (its `_forced` and `_windows`, `rate_scale`,
    `rate_limits_enabled`), kept under FakeSlack's lock."""

    _forced: dict[str, list[int]]
    _windows: dict[tuple[str, str], deque[float]]
    rate_scale: float
    rate_limits_enabled: bool

    def _rate_check(self, method: str, args: dict[str, Any]) -> int | None:
        """None if the call may proceed (and is counted), else the Retry-After seconds."""
        forced = self._forced.get(method)
        if forced and forced[0] > 0:
            forced[0] -= 1
            return forced[1]
        windows = RATE_LIMITS.get(method)
        if not windows or not self.rate_limits_enabled:
            return None
        key = str(args.get("channel", "")) if method == "chat.postMessage" else ""
        stamps = self._windows.setdefault((method, key), deque())
        now = time.monotonic()
        wait = 0.0
        for w in (scaled(w, self.rate_scale) for w in windows):
            inside = [t for t in stamps if t > now - w.seconds]
            if len(inside) >= w.limit:
                wait = max(wait, inside[-w.limit] + w.seconds - now)
        if wait > 0:
            return max(1, math.ceil(wait))
        stamps.append(now)
        longest = max(scaled(w, self.rate_scale).seconds for w in windows)
        while stamps and stamps[0] <= now - longest:
            stamps.popleft()
        return None
