"""Source-server and migration listeners: `server …`, `migrate …`, `jobs`, `job` (issue 5)."""

from __future__ import annotations

from slack_bolt import App

from bot.router import Router
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    pass
