"""Domain listeners: `domain add|list|check|recheck|remove`, the add modal and the buttons.

They parse and answer; the work is in purelyops.domains. A command and its button share
one handler, which answers with `replace`: the clicked message is replaced, and a
command or a form gets a new reply."""

from __future__ import annotations

from slack_bolt import App

from bot.blocks import domains as blocks
from bot.blocks.deletions import scheduled_blocks
from bot.interactions import FieldErrors, guarded, guarded_view
from bot.request import Request
from bot.router import Router, Usage
from purelyops import domains
from purelyops.access import Role
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.runtime import Runtime

USAGE = "give one domain name, like `{}` example.com"


def add(request: Request, raw: str) -> None:
    """The command, the form and Check again."""
    outcome = domains.add_domain(request.rt, raw, actor_id=request.user_id, actor_name=request.user_name)
    if outcome.added:
        request.replace(*blocks.added_blocks(outcome))
    else:
        request.replace(*blocks.ownership_needed_blocks(outcome, domains.publish_instructions(outcome.name.ascii,
                                                                                              outcome.code)))


def check(request: Request, raw: str) -> None:
    request.replace(*blocks.check_blocks(domains.check(request.rt, raw)))


def recheck(request: Request, raw: str) -> None:
    row = domains.recheck(request.rt, raw, actor_id=request.user_id, actor_name=request.user_name)
    request.reply(*blocks.recheck_blocks(row))


def remove(request: Request, raw: str) -> None:
    scheduled, consequence = domains.schedule_removal(request.rt, raw, actor_id=request.user_id,
                                                      channel_id=request.channel_id or None)
    if not scheduled.created:
        consequence = "It was already scheduled; this is the same deletion. " + consequence
    request.reply(*scheduled_blocks(scheduled.deletion, consequence))


def valid_name(values: dict) -> str:
    raw = str(values.get("name") or "")
    try:
        normalize_domain(raw)
    except InvalidDomain as error:
        raise FieldErrors({"name": error.message}) from None
    return raw


def register(app: App, router: Router, rt: Runtime) -> None:
    command = router.command

    def one_name(subcommand: str, request: Request) -> str:
        """The single domain argument, or Usage saying what to give."""
        if len(request.args) != 1:
            raise Usage(USAGE.format(f"{command} domain {subcommand}"))
        return request.args[0]

    @router.add("domain add", "domain add [example.com]", "add a domain (checks the ownership TXT first)")
    def add_command(request: Request) -> None:
        if request.args:
            add(request, one_name("add", request))
        else:
            request.open_modal(blocks.add_modal(request.channel_id))

    app.view(blocks.ADD_CALLBACK)(guarded_view(rt, Role.ADMIN, "add a domain", valid_name)(add))
    app.action(blocks.ADD_RETRY_ACTION)(guarded(rt, Role.ADMIN, "add a domain")(lambda r: add(r, r.value)))

    @router.add("domain list", "domain list", "every domain with its MX/SPF/DKIM/DMARC badges", role=Role.VIEWER)
    def list_domains(request: Request) -> None:
        request.reply(*blocks.list_blocks(domains.list_page(request.rt)))

    @guarded(rt, Role.VIEWER, "page through domains")
    def previous_page(request: Request) -> None:
        request.replace(*blocks.list_blocks(domains.list_page(request.rt, before=request.value)))

    @guarded(rt, Role.VIEWER, "page through domains")
    def next_page(request: Request) -> None:
        request.replace(*blocks.list_blocks(domains.list_page(request.rt, after=request.value)))

    app.action(blocks.PREV_ACTION)(previous_page)
    app.action(blocks.NEXT_ACTION)(next_page)

    router.add("domain check", "domain check example.com", "live DNS check of the seven records, with fixes",
               role=Role.VIEWER)(lambda r: check(r, one_name("check", r)))
    app.action(blocks.CHECK_ACTION)(guarded(rt, Role.VIEWER, "check a domain")(lambda r: check(r, r.value)))

    router.add("domain recheck", "domain recheck example.com", "ask PurelyMail to re-run its DNS checks")(
        lambda r: recheck(r, one_name("recheck", r)))
    app.action(blocks.RECHECK_ACTION)(
        guarded(rt, Role.ADMIN, "ask PurelyMail to recheck a domain")(lambda r: recheck(r, r.value)))

    router.add("domain remove", "domain remove example.com", "delete a domain and its mailboxes, 24 h from now")(
        lambda r: remove(r, one_name("remove", r)))
    app.action(blocks.REMOVE_ACTION)(guarded(rt, Role.ADMIN, "remove a domain")(lambda r: remove(r, r.value)))
