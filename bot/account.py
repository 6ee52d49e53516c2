"""Account listeners: `credit`."""

from __future__ import annotations

from slack_bolt import App

from bot.blocks.account import credit_blocks
from bot.request import Request
from bot.router import Router
from purelyops import credit
from purelyops.access import Role
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    @router.add("credit", "credit", "show the PurelyMail account credit", role=Role.VIEWER)
    def show_credit(request: Request) -> None:
        request.reply(*credit_blocks(credit.current(request.rt), request.rt.settings.low_credit_threshold))
