"""Audit listeners: `audit [text] [user:@x] [since:7d]` and its "Older" button."""

from __future__ import annotations

from slack_bolt import App

from bot.blocks.audit import OLDER_ACTION, audit_blocks
from bot.interactions import guarded
from bot.payloads import read_audit_page
from bot.request import Request
from bot.router import Router
from purelyops.access import Role
from purelyops.audit_query import parse_query, search
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    @router.add("audit", "audit [text] [user:@x] [since:7d]", "who did what, newest first", role=Role.ADMIN)
    def show_audit(request: Request) -> None:
        query = parse_query(request.args)
        request.reply(*audit_blocks(*search(request.rt, query), query))

    @guarded(rt, Role.ADMIN, "read the audit log")
    def older(request: Request) -> None:
        query = read_audit_page(request.value)
        request.replace(*audit_blocks(*search(request.rt, query), query))

    app.action(OLDER_ACTION)(older)
