"""Builds the Bolt app: the one place where every capability is wired in."""

from __future__ import annotations

import logging
import time

from slack_bolt import App, BoltRequest, BoltResponse

from bot import account, audit, deletions, domains, gather, general, mailboxes, migrations, routing_rules
from bot.delivery import dedupe_middleware
from bot.router import Router
from purelyops import metrics
from purelyops.logs import quiet_verification_logger
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)


class TimedApp(App):
    """Bolt's App, timing each request to its ack by kind (purelyops.metrics). Both modes
    hand every request to `dispatch`: the WSGI handler and the Socket Mode handler."""

    def dispatch(self, req: BoltRequest) -> BoltResponse:
        started = time.perf_counter()
        try:
            return super().dispatch(req)
        finally:
            metrics.ACK_SECONDS.labels(metrics.request_kind(req.body)).observe(time.perf_counter() - started)


def build_app(rt: Runtime, *, verify_token: bool = True) -> App:
    app = TimedApp(
        client=rt.slack,
        signing_secret=rt.settings.slack_signing_secret,
        token_verification_enabled=verify_token,
        # Every listener acks and hands its work to bot.work.after_ack, so it returns at once:
        # running it in the request's own thread answers Slack without Bolt's 10 ms ack polling.
        process_before_response=True,
        logger=logging.getLogger("bot.bolt"),
    )
    # Made with the App, Bolt's verification logger took bot.bolt's level: it would write
    # the body of every request it refuses at INFO, modal passwords included.
    quiet_verification_logger()
    app.middleware(dedupe_middleware(rt))
    router = Router(rt.settings.slack_command)
    # Bolt tries listeners in order, and most requests are slash commands: the command's
    # listener comes first (it looks subcommands up when a command arrives).
    router.register(app, rt)
    for capability in (general, account, domains, mailboxes, routing_rules, migrations, gather, deletions, audit):
        capability.register(app, router, rt)
    return app
