"""What a purelyops process holds while it runs: settings and the clients built from them.

The bot, the workers and the tests build one `Runtime` and pass it to service
functions, so that every caller talks to PurelyMail, Slack, PostgreSQL and Redis the
same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import cached_property

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from purelyops import metrics
from purelyops.logs import quiet_payload_loggers
from purelyops.purelymail import PurelyMailClient
from purelyops.settings import Settings
from purelyops.throttle import Throttle

# Whatever configures logging (or not: tests, jobs), payload-dumping DEBUG lines stay off.
quiet_payload_loggers()


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def redis(self) -> redis.Redis:
        return make_redis(self.settings.redis_url)

    @cached_property
    def slack(self) -> WebClient:
        """The bot's Web API client: Slack's 429s are waited out and retried."""
        return make_slack_client(self.settings)

    @cached_property
    def purelymail(self) -> PurelyMailClient:
        """The PurelyMail client, throttled together with every other process through Redis."""
        throttle = Throttle(
            self.redis,
            "purelyops:throttle:purelymail",
            rate_per_s=self.settings.purelymail_rate,
            burst=self.settings.purelymail_burst,
        )
        return PurelyMailClient(
            self.settings.purelymail_api_url, self.settings.purelymail_api_token, throttle=throttle
        )

    @property
    def database_url(self) -> str:
        return self.settings.database_url


def make_redis(url: str) -> redis.Redis:
    """A Redis client that gives up within about a second when Redis is down, so that
    commands and /healthz can say so instead of hanging."""
    return redis.Redis.from_url(
        url,
        socket_timeout=5,
        socket_connect_timeout=1,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=2),
    )


def make_slack_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            CountedRateLimitRetryHandler(max_retry_count=10),  # bursts into one channel wait their turn
            ConnectionErrorRetryHandler(max_retry_count=1),
        ],
    )


class CountedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Slack's 429s waited out (Retry-After) and retried, as slack_sdk does, and counted by
    API method with the seconds waited (purelyops.metrics)."""

    def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:  # type: ignore[no-untyped-def]
        started = time.monotonic()
        try:
            super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)
        finally:
            method = request.url.rstrip("/").rsplit("/", 1)[-1] or "?"
            metrics.SLACK_RATE_LIMITED.labels(method).inc()
            metrics.SLACK_RATE_LIMIT_WAIT.labels(method).inc(time.monotonic() - started)
