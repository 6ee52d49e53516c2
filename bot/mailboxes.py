"""Mailbox and routing-rule listeners: `mailbox list|add|show|sync`, `rule list|add|remove`,
and the buttons and modals that go with them. The work is in purelyops.mailboxes/routing_rules."""

from __future__ import annotations

from slack_bolt import App

from bot import alerts
from bot.blocks import mailboxes as blocks
from bot.blocks.deletions import scheduled_blocks
from bot.interactions import FieldErrors, guarded, guarded_view
from bot.payloads import read_toggle, unpack
from bot.request import Request
from bot.router import Router, Usage
from purelyops import mailboxes
from purelyops.access import Role
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.runtime import Runtime


def _one_address(request: Request, usage: str) -> str:
    """The single argument, as typed, or Usage saying what to give."""
    if len(request.args) != 1:
        raise Usage(usage)
    return request.args[0]


def _password_choice(values: dict) -> str | None:
    """The typed password, or None for a generated one; FieldErrors when it won't do."""
    if values.get("password_mode") != "typed":
        return None
    try:
        return mailboxes.check_password(str(values.get("password") or ""))
    except mailboxes.MailboxError as error:
        raise FieldErrors({"password": str(error)}) from None


def register(app: App, router: Router, rt: Runtime) -> None:
    command = router.command

    # ---- list and sync ----------------------------------------------------------------------

    @router.add("mailbox list", "mailbox list [text] [domain:example.com]", "find mailboxes (from the cache)",
                role=Role.VIEWER)
    def list_users(request: Request) -> None:
        search, domain = mailboxes.parse_query(request.args)
        request.reply(*blocks.list_blocks(mailboxes.list_page(request.rt, search, domain), search, domain))

    def page(request: Request, direction: str) -> None:
        search, domain, cursor = unpack(request.value, 3)
        kwargs = {"before": cursor} if direction == "before" else {"after": cursor}
        request.replace(*blocks.list_blocks(mailboxes.list_page(request.rt, search, domain or None, **kwargs),
                                            search, domain or None))

    @guarded(rt, Role.VIEWER, "page through mailboxes")
    def previous_page(request: Request) -> None:
        page(request, "before")

    @guarded(rt, Role.VIEWER, "page through mailboxes")
    def next_page(request: Request) -> None:
        page(request, "after")

    app.action(blocks.PREV_ACTION)(previous_page)
    app.action(blocks.NEXT_ACTION)(next_page)

    @router.add("mailbox sync", "mailbox sync [confirm]",
                "refresh the mailbox cache from PurelyMail now (confirm: accept a large drop)")
    def sync_now(request: Request) -> None:
        words = [word.lower() for word in request.args]
        if words not in ([], ["confirm"]):
            raise Usage("give nothing, or `confirm` to remove a large drop the last sync held back, "
                        f"like `{command} mailbox sync confirm`")
        report = mailboxes.sync(request.rt, confirm_drop=words == ["confirm"])
        request.reply(*blocks.sync_report_blocks(report))
        alerts.sync_report(request.rt, report)

    # ---- add --------------------------------------------------------------------------------

    @router.add("mailbox add", "mailbox add", "create a mailbox (opens a form)")
    def add(request: Request) -> None:
        request.open_modal(blocks.add_modal(mailboxes.cached_domains(request.rt), request.channel_id))

    def valid_new_user(values: dict) -> tuple[mailboxes.NewMailbox, str]:
        errors: dict[str, str] = {}
        local = domain = ""
        try:
            local = mailboxes.check_local_part(str(values.get("local_part") or ""))
        except mailboxes.MailboxError as error:
            errors["local_part"] = str(error)
        try:
            domain = normalize_domain(str(values.get("domain") or "")).ascii
        except InvalidDomain as error:
            errors["domain"] = error.message
        password = None
        try:
            password = _password_choice(values)
        except FieldErrors as invalid:
            errors.update(invalid.problems)
        if errors:
            raise FieldErrors(errors)
        chosen = lambda block: "on" in (values.get(block) or [])  # noqa: E731
        new = mailboxes.NewMailbox(local, domain, password, enable_password_reset=chosen("password_reset"),
                            enable_search_indexing=chosen("search_indexing"),
                            send_welcome_email=chosen("welcome_email"))
        return new, mailboxes.strength_hint(password) if password else ""

    def answer_password(request: Request, address: str, generated: str | None, what: str, hint: str) -> None:
        """The one message about a new password: a generated one only ever ephemerally."""
        text, message = blocks.password_once_blocks(address, generated, what, hint)
        if generated is None:
            request.reply(text, message)
            return
        request.reply_secret(text, message, shown=blocks.password_shown_words(address, what),
                             lost=blocks.password_lost_words(address, what, command))

    @guarded_view(rt, Role.ADMIN, "create a mailbox", valid_new_user, working="Creating the mailbox…")
    def submit_add(request: Request, parsed: tuple[mailboxes.NewMailbox, str]) -> None:
        new, hint = parsed
        password = mailboxes.create_user(request.rt, new, actor_id=request.user_id, actor_name=request.user_name)
        answer_password(request, new.address, password if new.password is None else None, "Created the mailbox", hint)

    app.view(blocks.ADD_CALLBACK)(submit_add)

    # ---- one mailbox ------------------------------------------------------------------------

    @router.add("mailbox show", "mailbox show alice@example.com", "a mailbox's settings, with actions",
                role=Role.VIEWER)
    def show(request: Request) -> None:
        raw = _one_address(request, f"give one address, like `{command} mailbox show alice@example.com`")
        request.reply(*blocks.user_blocks(mailboxes.show_user(request.rt, mailboxes.check_address(raw))))

    @guarded(rt, Role.ADMIN, "reset a password")
    def open_reset(request: Request) -> None:
        request.open_modal(blocks.reset_modal(request.value, request.channel_id))

    app.action(blocks.RESET_ACTION)(open_reset)

    def valid_reset(values: dict) -> tuple[str | None, str]:
        password = _password_choice(values)
        return password, mailboxes.strength_hint(password) if password else ""

    @guarded_view(rt, Role.ADMIN, "reset a password", valid_reset, working="Setting the new password…")
    def submit_reset(request: Request, parsed: tuple[str | None, str]) -> None:
        password, hint = parsed
        address = mailboxes.check_address(request.value)
        new = mailboxes.reset_password(request.rt, address, password, actor_id=request.user_id,
                                   actor_name=request.user_name)
        answer_password(request, address, new if password is None else None, "New password set for", hint)

    app.view(blocks.RESET_CALLBACK)(submit_reset)

    def flag_button(action_id: str, flag: str) -> None:
        @guarded(rt, Role.ADMIN, mailboxes.FLAGS[flag])
        def toggle(request: Request) -> None:
            turn_on, address = read_toggle(request.value)
            details = mailboxes.set_flag(request.rt, mailboxes.check_address(address), flag, turn_on,
                                     actor_id=request.user_id, actor_name=request.user_name)
            request.replace(*blocks.user_blocks(details))

        app.action(action_id)(toggle)

    flag_button(blocks.TWO_FACTOR_ACTION, "two_factor")
    flag_button(blocks.SEARCH_ACTION, "search")

    @guarded(rt, Role.VIEWER, "see recovery methods")
    def recovery(request: Request) -> None:
        address = mailboxes.check_address(request.value)
        request.reply(*blocks.recovery_blocks(address, mailboxes.recovery_methods(request.rt, address)))

    app.action(blocks.RECOVERY_ACTION)(recovery)

    @guarded(rt, Role.ADMIN, "change recovery methods")
    def open_recovery(request: Request) -> None:
        request.open_modal(blocks.recovery_modal(request.value, request.channel_id))

    app.action(blocks.RECOVERY_ADD_ACTION)(open_recovery)

    def valid_recovery(values: dict) -> tuple[str, str, str | None]:
        kind = str(values.get("type") or "email")
        target = str(values.get("target") or "").strip()
        if kind == "email":
            try:
                target = mailboxes.check_address(target)
            except mailboxes.MailboxError as error:
                raise FieldErrors({"target": str(error)}) from None
        elif not (7 <= len(target) <= 20 and target.lstrip("+").replace(" ", "").isdigit()):
            raise FieldErrors({"target": "give a phone number with its country code, like +44 20 7946 0000"})
        description = str(values.get("description") or "").strip() or None
        return kind, target, description

    @guarded_view(rt, Role.ADMIN, "change recovery methods", valid_recovery)
    def submit_recovery(request: Request, parsed: tuple[str, str, str | None]) -> None:
        kind, target, description = parsed
        address = mailboxes.check_address(request.value)
        methods = mailboxes.add_recovery(request.rt, address, kind, target, description,  # type: ignore[arg-type]
                                     actor_id=request.user_id, actor_name=request.user_name)
        request.reply(*blocks.recovery_blocks(address, methods))

    app.view(blocks.RECOVERY_CALLBACK)(submit_recovery)

    @guarded(rt, Role.ADMIN, "remove a recovery method")
    def remove_recovery(request: Request) -> None:
        address, target = unpack(request.value, 2)
        address = mailboxes.check_address(address)
        methods = mailboxes.remove_recovery(request.rt, address, target, actor_id=request.user_id,
                                        actor_name=request.user_name)
        request.replace(*blocks.recovery_blocks(address, methods))

    app.action(blocks.RECOVERY_REMOVE_ACTION)(remove_recovery)

    # ---- delete -----------------------------------------------------------------------------

    def delete(request: Request, address: str) -> None:
        """The command and the Delete button."""
        scheduled = mailboxes.schedule_delete(request.rt, mailboxes.check_address(address), actor_id=request.user_id,
                                          channel_id=request.channel_id or None)
        note = "" if scheduled.created else "It was already scheduled; this is the same deletion."
        request.reply(*scheduled_blocks(scheduled.deletion, note))

    router.add("mailbox delete", "mailbox delete alice@example.com", "delete a mailbox, 24 h from now")(
        lambda r: delete(r, _one_address(r, f"give one address, like `{command} mailbox delete alice@example.com`")))
    app.action(blocks.DELETE_ACTION)(guarded(rt, Role.ADMIN, "delete a mailbox")(lambda r: delete(r, r.value)))
