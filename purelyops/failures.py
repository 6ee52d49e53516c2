"""Plain words for what went wrong, for Slack replies and alerts.

Listeners and jobs catch failures at their edge and show `describe_failure(error)`;
it never includes a traceback or a secret.
"""

from __future__ import annotations

import redis
from sqlalchemy.exc import DBAPIError, OperationalError

from purelyops.purelymail import PurelyMailError
from purelyops.throttle import ThrottleError


def describe_failure(error: BaseException) -> str:
    if isinstance(error, PurelyMailError | ThrottleError):
        return str(error)
    if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return "Redis is not reachable, so the job queue is unavailable right now. Try again in a minute; if it goes on, check REDIS_URL and the Redis server."
    if isinstance(error, redis.exceptions.RedisError):
        return "Redis refused the request. Check the Redis server's log."
    if isinstance(error, OperationalError):
        return "The database is not reachable right now. Try again in a minute; if it goes on, check DATABASE_URL and the PostgreSQL server."
    if isinstance(error, DBAPIError):
        return "The database refused the change, so nothing was saved."
    return "Something unexpected went wrong on our side. The details are in the bot's log."
