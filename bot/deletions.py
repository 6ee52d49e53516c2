"""Deletion-queue listeners: `pending`, and the Cancel button on every scheduled deletion."""

from __future__ import annotations

from slack_bolt import App

from bot.blocks.deletions import CANCEL_ACTION, cancelled_blocks, pending_blocks
from bot.interactions import guarded
from bot.payloads import number
from bot.request import Request
from bot.router import Router
from purelyops import deletions
from purelyops.access import Role
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    @router.add("pending", "pending", "list scheduled deletions, with Cancel", role=Role.VIEWER)
    def show_pending(request: Request) -> None:
        request.reply(*pending_blocks(deletions.pending(request.rt)))

    @guarded(rt, Role.ADMIN, "cancel a deletion")
    def cancel_deletion(request: Request) -> None:
        deletion = deletions.cancel(request.rt, number(request.value), request.user_id)
        request.replace(*cancelled_blocks(deletion, request.user_id))

    app.action(CANCEL_ACTION)(cancel_deletion)
