"""Mailbox and routing-rule listeners: `user …`, `alias …` (issue 4)."""

from __future__ import annotations

from slack_bolt import App

from bot.router import Router
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    pass
