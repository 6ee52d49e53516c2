"""General listeners: `help` and the App Home tab."""

from __future__ import annotations

from slack_bolt import App
from slack_sdk import WebClient

from bot.blocks.help import help_blocks
from bot.blocks.home import home_view
from bot.request import Request
from bot.router import Router
from bot.work import after_ack
from purelyops.access import RoleUnknown, is_admin
from purelyops.dashboard import dashboard
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    @router.add("help", "help", "show this list", role=None)
    def show_help(request: Request) -> None:
        request.reply(
            f"{router.command} commands",
            help_blocks(router.command, router.subcommands.values()),
        )

    def publish_home(event: dict, client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return
        user_id = event["user"]
        try:
            admin = is_admin(rt, user_id)
        except RoleUnknown:
            admin = False
        client.views_publish(user_id=user_id, view=home_view(router.command, admin, dashboard(rt) if admin else None))

    app.event("app_home_opened")(lambda event, client: after_ack(publish_home, event, client))
