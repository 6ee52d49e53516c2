"""What a purelyops process holds while it runs: settings and the clients built from them.

The bot, the workers and the tests build one `Runtime` and pass it to service
functions, so that every caller talks to PurelyMail, Slack, PostgreSQL and Redis the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import redis
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)

from purelyops.settings import Settings


@dataclass
class Runtime:
    settings: Settings

    @cached_property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(
            self.settings.redis_url, socket_timeout=5, socket_connect_timeout=3
        )

    @cached_property
    def slack(self) -> WebClient:
        """The bot's Web API client: Slack's 429s are waited out and retried."""
        return make_slack_client(self.settings)

    @property
    def database_url(self) -> str:
        return self.settings.database_url


def make_slack_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=15,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=3),
            ConnectionErrorRetryHandler(max_retry_count=1),
        ],
    )
