"""Routing-rule listeners: `rule list|add|remove` (`alias …` still works). The work is in
purelyops.routing_rules."""

from __future__ import annotations

from slack_bolt import App

from bot.blocks import routing_rules as rule_blocks
from bot.blocks.deletions import scheduled_blocks
from bot.interactions import guarded_view
from bot.request import Request
from bot.router import Router, Usage
from purelyops import mailboxes, routing_rules
from purelyops.access import Role
from purelyops.runtime import Runtime


def register(app: App, router: Router, rt: Runtime) -> None:
    command = router.command

    @router.add("rule list", "rule list [example.com]", "routing rules (forwarding, aliases), per domain",
                role=Role.VIEWER)
    def list_rules(request: Request) -> None:
        domain = routing_rules.check_domain(request.args[0]) if request.args else None
        request.reply(*rule_blocks.list_blocks(routing_rules.list_rules(request.rt, domain), domain))

    @router.add("rule add", "rule add", "create a routing rule (opens a form)")
    def add_rule(request: Request) -> None:
        request.open_modal(rule_blocks.add_modal(mailboxes.cached_domains(request.rt), request.channel_id))

    @guarded_view(rt, Role.ADMIN, "create a routing rule", routing_rules.parse_new_rule)
    def submit_rule(request: Request, rule: routing_rules.NewRoutingRule) -> None:
        created = routing_rules.create_rule(request.rt, rule, actor_id=request.user_id, actor_name=request.user_name)
        request.reply(*rule_blocks.created_blocks(created))

    app.view(rule_blocks.ADD_CALLBACK)(submit_rule)

    @router.add("rule remove", "rule remove <id>", "delete a routing rule, 24 h from now")
    def remove_rule(request: Request) -> None:
        if len(request.args) != 1 or not request.args[0].isdigit() or len(request.args[0]) > 18:
            raise Usage(f"give the rule's number from `{command} rule list`, like `{command} rule remove 42`")
        scheduled = routing_rules.schedule_removal(request.rt, int(request.args[0]), actor_id=request.user_id,
                                             channel_id=request.channel_id)
        request.reply(*scheduled_blocks(scheduled.deletion, scheduled.deletion.detail))
