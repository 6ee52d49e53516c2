"""Slack delivery semantics: a request Slack sends again is acknowledged and ignored.

Slack retries events (X-Slack-Retry-Num) and people submit a modal twice. Each request
gets a key derived from its payload — an event's event_id, a command's trigger_id, a
modal's view id and hash, a click's action_ts — claimed once in Redis. The second
delivery of the same key is acked without running anything. Double clicks (two distinct
clicks) are handled where it matters: every mutation is a state transition that the
second click finds already made.

A modal submission is claimed before its listener runs, since its ack can carry inline
errors and some forms write before the ack. A command, a click or an event is acked
empty whatever happens, so its claim waits for its work (`bot.work.after_ack` calls
`claim_later`'s check first): the ack makes no round trip to Redis.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from contextvars import ContextVar

import redis
from slack_bolt import BoltRequest, BoltResponse

from purelyops.runtime import Runtime

log = logging.getLogger(__name__)
CLAIM_SECONDS = 6 * 3600
_later: ContextVar[Callable[[], bool] | None] = ContextVar("delivery_claim_later", default=None)


def delivery_key(body: dict) -> str | None:
    """What identifies this delivery, whatever the number of times Slack sends it."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    kind = body.get("type")
    if kind == "view_submission":
        view = body.get("view") or {}
        # The same view is submitted again after its inline errors are fixed: what was typed
        # is part of the key, so only a repeat of the very same submission is ignored.
        typed = json.dumps((view.get("state") or {}).get("values"), sort_keys=True)
        return f"view:{view.get('id')}:{view.get('hash')}:{hashlib.sha256(typed.encode()).hexdigest()}"
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return f"action:{body.get('user', {}).get('id')}:{actions[0].get('action_ts')}:{actions[0].get('action_id')}"
    if body.get("command") and body.get("trigger_id"):
        return f"command:{body['trigger_id']}"
    return None


def dedupe_middleware(rt: Runtime) -> Callable:
    def dedupe(req: BoltRequest, body: dict, next: Callable[[], BoltResponse]) -> BoltResponse:  # noqa: A002
        # Bolt runs the listener after every middleware has returned, in this thread: what is
        # set here is what its after_ack finds, until the next request's dispatch sets it again.
        _later.set(None)
        key = delivery_key(body)
        if key is None:
            return next()
        retry = (req.headers.get("x-slack-retry-num") or ["-"])[0]
        if body.get("type") != "view_submission":
            _later.set(lambda: first_delivery(rt, key, retry))
            return next()
        if first_delivery(rt, key, retry):
            return next()
        return BoltResponse(status=200, body="")

    return dedupe


def first_delivery(rt: Runtime, key: str, retry: str = "-") -> bool:
    """Claim this delivery; False (and a log line) when it was claimed before."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    try:
        first = rt.redis.set(f"purelyops:delivery:{digest}", 1, nx=True, ex=CLAIM_SECONDS)
    except redis.RedisError:
        first = True  # without Redis we cannot tell; the mutations' own checks still hold
    if not first:
        log.info("ignored a repeated delivery (%s, retry %s)", key.split(":")[0], retry)
    return bool(first)


def claim_later() -> Callable[[], bool] | None:
    """The claim of the request whose listener runs in this thread, when it was left for
    its work: the work runs only if calling it returns True. None: nothing to claim."""
    claim = _later.get()
    _later.set(None)  # one claim, for the one piece of work that answers the request
    return claim
