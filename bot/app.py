"""Builds the Bolt app: the one place where every capability is wired in."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App

from bot import account, audit, deletions, domains, general, migrations, users
from bot.delivery import dedupe_middleware
from bot.router import Router
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)

# Listeners ack first and then work (PurelyMail calls, DB writes) in this pool, so a slow
# PurelyMail never delays the ack of the next request.
LISTENER_THREADS = 64


def build_app(rt: Runtime, *, verify_token: bool = True) -> App:
    app = App(
        client=rt.slack,
        signing_secret=rt.settings.slack_signing_secret,
        token_verification_enabled=verify_token,
        listener_executor=ThreadPoolExecutor(LISTENER_THREADS, thread_name_prefix="listener"),
        logger=logging.getLogger("bot.bolt"),
    )
    app.middleware(dedupe_middleware(rt))
    router = Router(rt.settings.slack_command)
    for capability in (general, account, domains, users, migrations, deletions, audit):
        capability.register(app, router, rt)
    router.register(app, rt)
    return app
