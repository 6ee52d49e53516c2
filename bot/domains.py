"""Domain listeners: `domain add|list|check|recheck|remove`, the add modal and the buttons.

They parse and answer; the work is in purelyops.domains."""

from __future__ import annotations

from slack_bolt import App

from bot.blocks import domains as blocks
from bot.blocks.deletions import scheduled_blocks
from bot.interactions import ActionRequest, FieldErrors, SubmissionRequest, guarded, guarded_view
from bot.router import CommandRequest, Router, Usage
from purelyops import domains
from purelyops.access import Role
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.runtime import Runtime

USAGE = "give one domain name, like `{}` example.com"


def _one_name(request: CommandRequest, usage: str) -> str:
    """The single domain argument, or Usage saying what to give."""
    if len(request.args) != 1:
        raise Usage(usage)
    return request.args[0]


def add_and_answer(rt: Runtime, raw: str, user_id: str, user_name: str, answer) -> None:
    """The add flow shared by the command, the modal and Check again: `answer(text, blocks)`."""
    outcome = domains.add_domain(rt, raw, actor_id=user_id, actor_name=user_name)
    if outcome.added:
        answer(*blocks.added_blocks(outcome))
    else:
        answer(*blocks.ownership_needed_blocks(outcome, domains.publish_instructions(outcome.name.ascii, outcome.code)))


def register(app: App, router: Router, rt: Runtime) -> None:
    command = router.command

    @router.add("domain add", "domain add [example.com]", "add a domain (checks the ownership TXT first)")
    def add(request: CommandRequest) -> None:
        if not request.args:
            request.client.views_open(trigger_id=request.trigger_id, view=blocks.add_modal(request.channel_id))
            return
        add_and_answer(request.rt, _one_name(request, USAGE.format(f"{command} domain add")), request.user_id, request.user_name, request.reply)

    def valid_name(values: dict) -> str:
        raw = str(values.get("name") or "")
        try:
            normalize_domain(raw)
        except InvalidDomain as error:
            raise FieldErrors({"name": error.message}) from None
        return raw

    @guarded_view(rt, Role.ADMIN, "add a domain", valid_name)
    def submit_add(request: SubmissionRequest, raw: str) -> None:
        add_and_answer(request.rt, raw, request.user_id, request.user_name, request.reply)

    app.view(blocks.ADD_CALLBACK)(submit_add)

    @guarded(rt, Role.ADMIN, "add a domain")
    def add_again(request: ActionRequest) -> None:
        user = request.body["user"]
        add_and_answer(request.rt, request.value, user["id"], user.get("username", ""), request.replace)

    app.action(blocks.ADD_RETRY_ACTION)(add_again)

    @router.add("domain list", "domain list", "every domain with its MX/SPF/DKIM/DMARC badges", role=Role.VIEWER)
    def list_domains(request: CommandRequest) -> None:
        request.reply(*blocks.list_blocks(domains.list_page(request.rt)))

    @guarded(rt, Role.VIEWER, "page through domains")
    def previous_page(request: ActionRequest) -> None:
        request.replace(*blocks.list_blocks(domains.list_page(request.rt, before=request.value)))

    @guarded(rt, Role.VIEWER, "page through domains")
    def next_page(request: ActionRequest) -> None:
        request.replace(*blocks.list_blocks(domains.list_page(request.rt, after=request.value)))

    app.action(blocks.PREV_ACTION)(previous_page)
    app.action(blocks.NEXT_ACTION)(next_page)

    def show_check(rt_: Runtime, raw: str, answer) -> None:
        answer(*blocks.check_blocks(domains.check(rt_, raw)))

    @router.add("domain check", "domain check example.com", "live DNS check of the seven records, with fixes",
                role=Role.VIEWER)
    def check(request: CommandRequest) -> None:
        show_check(request.rt, _one_name(request, USAGE.format(f"{command} domain check")), request.reply)

    @guarded(rt, Role.VIEWER, "check a domain")
    def check_again(request: ActionRequest) -> None:
        show_check(request.rt, request.value, request.replace)

    app.action(blocks.CHECK_ACTION)(check_again)

    def do_recheck(rt_: Runtime, raw: str, user_id: str, user_name: str, answer) -> None:
        answer(*blocks.recheck_blocks(domains.recheck(rt_, raw, actor_id=user_id, actor_name=user_name)))

    @router.add("domain recheck", "domain recheck example.com", "ask PurelyMail to re-run its DNS checks")
    def recheck(request: CommandRequest) -> None:
        do_recheck(request.rt, _one_name(request, USAGE.format(f"{command} domain recheck")), request.user_id, request.user_name, request.reply)

    @guarded(rt, Role.ADMIN, "ask PurelyMail to recheck a domain")
    def recheck_button(request: ActionRequest) -> None:
        user = request.body["user"]
        do_recheck(request.rt, request.value, user["id"], user.get("username", ""), request.reply)

    app.action(blocks.RECHECK_ACTION)(recheck_button)

    def do_remove(rt_: Runtime, raw: str, user_id: str, channel_id: str | None, answer) -> None:
        scheduled, consequence = domains.schedule_removal(rt_, raw, actor_id=user_id, channel_id=channel_id)
        if not scheduled.created:
            consequence = "It was already scheduled; this is the same deletion. " + consequence
        text, notice = scheduled_blocks(scheduled.deletion, consequence)
        answer(text, notice)

    @router.add("domain remove", "domain remove example.com", "delete a domain and its mailboxes, 24 h from now")
    def remove(request: CommandRequest) -> None:
        do_remove(request.rt, _one_name(request, USAGE.format(f"{command} domain remove")), request.user_id, request.channel_id, request.reply)

    @guarded(rt, Role.ADMIN, "remove a domain")
    def remove_button(request: ActionRequest) -> None:
        channel = (request.body.get("channel") or {}).get("id")
        do_remove(request.rt, request.value, request.user_id, channel, request.reply)

    app.action(blocks.REMOVE_ACTION)(remove_button)

