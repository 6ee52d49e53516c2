"""Domain listeners: `domain add|list|check|recheck|remove` (issue 3)."""

from __future__ import annotations

from slack_bolt import App

from bot.router import Router
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    pass
