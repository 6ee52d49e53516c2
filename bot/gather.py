"""Credential-link listeners: `gather new|list|show|close`, the buttons on a link's
message, and the two modals (a new link; Create jobs). The work is in purelyops.gather;
messages about a link go out through bot.gather_messages. The public form itself is
bot.gather_page, served by the web process."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from slack_bolt import App

from bot import gather_messages as slack_out
from bot.blocks import gather as blocks
from bot.interactions import FieldErrors, guarded, guarded_view
from bot.mrkdwn import escape
from bot.request import Request
from bot.router import Router
from purelyops import gather, mailboxes, migrations, servers
from purelyops.access import Role
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.runtime import Runtime

CREATE_WORKING = ("Creating the mailboxes and the jobs… PurelyMail takes about a second a mailbox; the outcome "
                  "appears here and in the channel, only to you.")


def _link_id(request: Request, usage: str) -> int | None:
    if len(request.args) != 1 or not request.args[0].lstrip("#").isdigit() or len(request.args[0]) > 10:
        request.reply(f":warning: give the link's number from `{request.rt.settings.slack_command} gather list`, "
                      f"like `{request.rt.settings.slack_command} {usage} 3`")
        return None
    return int(request.args[0].lstrip("#"))


def register(app: App, router: Router, rt: Runtime) -> None:
    command = router.command

    # ---- a new link ----------------------------------------------------------------------------

    @router.add("gather new", "gather new", "a web form where people give their old mailbox's login (opens a form)")
    def new(request: Request) -> None:
        if not request.rt.settings.public_url:
            request.reply(f":warning: {escape(gather.no_public_url())}")
            return
        known = servers.list_servers(request.rt)
        if not known:
            request.reply(":warning: Add the old IMAP host first, with `server add`: the form checks each login there.")
            return
        request.open_modal(blocks.new_modal(known, mailboxes.cached_domains(request.rt), request.channel_id))

    def valid_new(values: dict) -> tuple[int, int, str, list[str]]:
        errors: dict[str, str] = {}
        days = str(values.get("expiry") or "")
        if not days.isdigit() or int(days) not in gather.EXPIRY_DAYS:
            errors["expiry"] = f"choose {', '.join(map(str, gather.EXPIRY_DAYS))} days"
        name = ""
        try:
            name = gather.check_name(str(values.get("name") or ""))
        except FieldErrors as invalid:
            errors.update(invalid.problems)
        server = str(values.get("server") or "")
        if not server.isdigit():
            errors["server"] = "choose the source server"
        domains: list[str] = []
        try:
            raw = values.get("domains") or ""
            domains = gather.check_domains(raw if isinstance(raw, list) else str(raw))
        except FieldErrors as invalid:
            errors.update(invalid.problems)
        if errors:
            raise FieldErrors(errors)
        return int(server), int(days), name, domains

    @guarded_view(rt, Role.ADMIN, "create a credential link", valid_new, working="Creating the link…")
    def submit_new(request: Request, parsed: tuple[int, int, str]) -> None:
        server_id, days, name, domains = parsed
        key = hashlib.sha256(f"{request.user_id}:{request.idempotency}".encode()).hexdigest()
        try:
            link, token, created = gather.create_link(request.rt, server_id, days, name, actor_id=request.user_id,
                                                      actor_name=request.user_name, channel_id=request.channel_id,
                                                      idempotency_key=key, dest_domains=domains)
        except gather.GatherError as error:
            request.reply(f":warning: {escape(error)}")
            return
        if created:
            slack_out.post_link(request.rt, link.id)
        text, secret = blocks.link_secret_blocks(gather.summary(request.rt, link.id),
                                                 gather.link_url(request.rt, token))
        request.show_in_modal(text, secret)  # the admin's own modal, and a message only they see
        slack_out.ephemeral(request.rt, request.channel_id, request.user_id, text, secret)

    app.view(blocks.NEW_CALLBACK)(submit_new)

    # ---- looking at links ----------------------------------------------------------------------

    @router.add("gather list", "gather list", "credential links, with their state and counts", role=Role.VIEWER)
    def list_links(request: Request) -> None:
        request.reply(*blocks.list_blocks(gather.summaries(request.rt)))

    def show(rt_: Runtime, link_id: int, reply) -> None:
        try:
            summary = gather.summary(rt_, link_id)
        except gather.GatherError as error:
            reply(f":warning: {escape(error)}")
            return
        reply(*blocks.show_blocks(summary, gather.plan(rt_, link_id)))

    @router.add("gather show", "gather show <id>", "a link's submissions, where each goes, and Create jobs")
    def show_command(request: Request) -> None:
        link_id = _link_id(request, "gather show")
        if link_id is not None:
            show(request.rt, link_id, request.reply)

    @guarded(rt, Role.ADMIN, "see a credential link's submissions")
    def show_button(request: Request) -> None:
        show(request.rt, int(request.value), request.reply)

    app.action(blocks.SHOW_ACTION)(show_button)

    @guarded(rt, Role.ADMIN, "see a credential link")
    def show_link(request: Request) -> None:
        summary = gather.summary(request.rt, int(request.value))
        if summary.state is not gather.LinkState.ACTIVE:
            request.reply(f":warning: Credential link {summary.link.id} is {summary.state.value}: its form is closed.")
            return
        try:
            url = gather.link_url(request.rt, gather.reveal_token(request.rt, summary.link))
        except gather.GatherError as error:
            request.reply(f":warning: {escape(error)}")
            return
        request.reply(*blocks.link_secret_blocks(summary, url))

    app.action(blocks.SHOW_LINK_ACTION)(show_link)

    # ---- closing -------------------------------------------------------------------------------

    def close(rt_: Runtime, link_id: int, user_id: str, user_name: str, reply) -> None:
        try:
            gather.close_link(rt_, link_id, actor_id=user_id, actor_name=user_name)
        except gather.GatherError as error:
            reply(f":warning: {escape(error)}")
            return
        slack_out.refresh_link(rt_, link_id)
        reply(f"Credential link {link_id} is closed: its form answers \"This form has closed\" from now on. "
              f"Submissions stay until their jobs are created (`{command} gather show {link_id}`), or "
              f"{rt_.settings.credential_retention_days} days.")

    @router.add("gather close", "gather close <id>", "close a credential link's form now")
    def close_command(request: Request) -> None:
        link_id = _link_id(request, "gather close")
        if link_id is not None:
            close(request.rt, link_id, request.user_id, request.user_name, request.reply)

    @guarded(rt, Role.ADMIN, "close a credential link")
    def close_button(request: Request) -> None:
        close(request.rt, int(request.value), request.user_id, request.user_name, request.reply)

    app.action(blocks.CLOSE_ACTION)(close_button)

    # ---- Create jobs ---------------------------------------------------------------------------

    @guarded(rt, Role.ADMIN, "create migration jobs")
    def open_create(request: Request) -> None:
        summary = gather.summary(request.rt, int(request.value))
        page, total = gather.next_page(request.rt, summary.link.id)
        if not page:
            request.reply(f":warning: Credential link {summary.link.id} has no submission waiting for a job.")
            return
        request.open_modal(blocks.create_modal(summary, page, total, mailboxes.cached_domains(request.rt),
                                               request.channel_id))

    app.action(blocks.CREATE_ACTION)(open_create)

    def valid_create(values: dict) -> gather.JobOptions:
        errors: dict[str, str] = {}
        domain = None
        if "domain" in values:
            try:
                domain = normalize_domain(str(values.get("domain") or "")).ascii
            except InvalidDomain as error:
                errors["domain"] = error.message
        exclude, max_age = migrations.run_options(values, errors)
        if errors:
            raise FieldErrors(errors)
        approved = frozenset(int(v) for block, chosen in values.items() if block.startswith(blocks.APPROVE_BLOCK)
                             for v in (chosen if isinstance(chosen, list) else []) if str(v).isdigit())
        return gather.JobOptions(domain, "dry" in (values.get("options") or []), exclude, max_age,
                                 approved=approved)

    @guarded_view(rt, Role.ADMIN, "create migration jobs", valid_create, working=CREATE_WORKING)
    def submit_create(request: Request, options: gather.JobOptions) -> None:
        link_id, rows = blocks.read_create_metadata(request.value)
        # Only the rows the modal listed, and of the approvals only theirs.
        options = replace(options, rows=rows, approved=options.approved & frozenset(rows))
        key = hashlib.sha256(f"{request.user_id}:{request.idempotency}".encode()).hexdigest()
        gather.enqueue_create_jobs(request.rt, link_id, options, actor_id=request.user_id,
                                   actor_name=request.user_name, channel_id=request.channel_id,
                                   view_id=request.view_id, title=request.title, idempotency_key=key)

    app.view(blocks.CREATE_CALLBACK)(submit_create)
