"""Plain words for what went wrong, for Slack replies, alerts and the log.

Listeners and jobs catch failures at their edge. An expected failure (PurelyMail, its
throttle, Slack, the database or Redis unreachable, the network) is shown as
`describe_failure(error)` and logged as one line, `failure_reason(error)`, without a
traceback. Anything else is a bug: it is logged with its traceback under a short error
id, and `describe_failure(error, error_id)` repeats that id so the log line can be found.
The words never include a traceback or a secret; they are plain text, so a caller that
puts them in mrkdwn escapes them like anything else it echoes.
"""

from __future__ import annotations

import secrets
import urllib.error

import redis
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy.exc import DBAPIError, OperationalError

from purelyops.purelymail import PurelyMailError, Timeout
from purelyops.throttle import ThrottleError

_NETWORK = (urllib.error.URLError, ConnectionError, TimeoutError)
_REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

# How an admin finds out whether a change PurelyMail did not confirm was made; {t} is its target.
_HOW_TO_CHECK = {
    "createUser": "See whether it exists with `mailbox show {t}` before creating it again.",
    "deleteUser": "See whether it is gone with `mailbox show {t}`.",
    "modifyUser": "See its settings with `mailbox show {t}`; after a password reset, reset it again to be sure "
                  "which password is in place.",
    "upsertPasswordReset": "See its recovery methods with `mailbox show {t}`.",
    "deletePasswordReset": "See its recovery methods with `mailbox show {t}`.",
    "createRoutingRule": "See the rules with `rule list {t}` before creating it again.",
    "deleteRoutingRule": "See whether rule {t} is still there with `rule list`.",
    "addDomain": "Run `domain add {t}` again: if it was done, it says the domain is already there.",
    "updateDomainSettings": "Run `domain recheck {t}` again.",
    "deleteDomain": "See whether it is still there with `domain list`.",
}


def new_error_id() -> str:
    """A short id (8 hex characters) that ties a message to its log line."""
    return secrets.token_hex(4)


def is_expected(error: BaseException) -> bool:
    """True for failures of something outside the bot; False for what can only be a bug."""
    return isinstance(error, (PurelyMailError, ThrottleError, SlackApiError, SlackRequestError, OperationalError,
                              *_REDIS_DOWN, *_NETWORK))


def failure_reason(error: BaseException) -> str:
    """One line for the log: which outside party failed, in which operation, and why."""
    if isinstance(error, PurelyMailError):
        return f"PurelyMail {error.operation}: {type(error).__name__}: {error}"
    if isinstance(error, ThrottleError):
        return f"PurelyMail throttle: {type(error).__name__}: {error}"
    if isinstance(error, SlackApiError):
        return f"Slack {_slack_method(error)}: {_slack_code(error)}"
    if isinstance(error, redis.exceptions.RedisError):
        return f"Redis: {type(error).__name__}: {_first_line(error)}"
    if isinstance(error, DBAPIError):
        return f"database: {type(error.orig).__name__}: {_first_line(error.orig)}"
    return f"{type(error).__name__}: {_first_line(error)}"


def describe_failure(error: BaseException, error_id: str | None = None) -> str:
    """Words for the admin. `error_id` is given for a bug, and is then part of the words."""
    words = _words(error)
    if error_id:
        words += f" (error id {error_id}: the bot's log has the details under it)"
    return words


def _words(error: BaseException) -> str:
    if isinstance(error, Timeout):
        return _timeout_words(error)
    if isinstance(error, PurelyMailError | ThrottleError):
        return str(error)
    if isinstance(error, SlackApiError):
        return f"Slack refused the request ({_slack_method(error)}: {_slack_code(error)})."
    if isinstance(error, (SlackRequestError, *_NETWORK)):
        return "Slack could not be reached. Try again in a minute."
    if isinstance(error, _REDIS_DOWN):
        return ("Redis is not reachable, so the job queue is unavailable right now. Try again in a minute; "
                "if it goes on, check REDIS_URL and the Redis server.")
    if isinstance(error, redis.exceptions.RedisError):
        return "Redis refused the request. Check the Redis server's log."
    if isinstance(error, OperationalError):
        return ("The database is not reachable right now. Try again in a minute; "
                "if it goes on, check DATABASE_URL and the PostgreSQL server.")
    if isinstance(error, DBAPIError):
        return "The database refused the change, so nothing was saved."
    return "Something unexpected went wrong on our side."


def _timeout_words(error: Timeout) -> str:
    said = str(error).rstrip(".")
    if not error.mutation:
        return f"{said}. Nothing was changed; try again in a minute."
    if not error.sent:
        return f"{said}: nothing was changed. Try again in a minute."
    check = _HOW_TO_CHECK.get(error.operation, "")
    target = error.target or "it"
    return (f"{said}. The request reached PurelyMail, so it may or may not have been done. "
            + check.format(t=target)).rstrip()


def _slack_method(error: SlackApiError) -> str:
    url = getattr(error.response, "api_url", "") or ""
    return url.rstrip("/").rsplit("/", 1)[-1] or "a Web API call"


def _slack_code(error: SlackApiError) -> str:
    try:
        return str(error.response.get("error") or "unknown error")
    except (AttributeError, TypeError):
        return "unknown error"


def _first_line(value: object) -> str:
    text = str(value).strip()
    return (text.splitlines() or [""])[0][:300]
