"""Block Kit for mailboxes: the list, the add and reset modals, one mailbox, the sync report."""

from __future__ import annotations

from bot.blocks.kit import (
    actions,
    button,
    checkboxes,
    confirm,
    context,
    fallback,
    input_block,
    message,
    modal,
    option,
    radio_buttons,
    section,
    static_select,
    text_input,
    when,
)
from bot.mrkdwn import code, escape
from bot.payloads import modal_metadata, pack, toggle_value
from purelyops.mailboxes import MailboxPage, SyncReport
from purelyops.purelymail import UserDetails

ADD_CALLBACK = "user_add"
RESET_CALLBACK = "user_reset_password"
RECOVERY_CALLBACK = "user_recovery_add"
PREV_ACTION = "user_list_previous"
NEXT_ACTION = "user_list_next"
RESET_ACTION = "user_reset_password"
TWO_FACTOR_ACTION = "user_two_factor"
SEARCH_ACTION = "user_search_indexing"
RECOVERY_ACTION = "user_recovery"
RECOVERY_ADD_ACTION = "user_recovery_add"
RECOVERY_REMOVE_ACTION = "user_recovery_remove"
DELETE_ACTION = "user_delete"


def list_blocks(page: MailboxPage, search: str, domain: str | None) -> tuple[str, list[dict]]:
    what = " ".join(filter(None, [f"matching {code(search)}" if search else "",
                                  f"on {code(domain)}" if domain else ""]))
    if not page.addresses:
        text = f"No mailboxes {what}." if what else "The mailbox cache is empty: run `mailbox sync`."
        return message(text, [section(fallback(text)), _context(page)])
    end = page.start + len(page.addresses) - 1
    text = f"Mailboxes {page.start}–{end} of {page.matched}" + (
        f" ({page.total} in all)" if page.matched != page.total else "")
    lines = "\n".join(code(a) for a in page.addresses)
    blocks: list[dict] = [section(f"*{page.matched} of {page.total}* mailboxes {what}".rstrip()),
                          section(lines), _context(page)]
    buttons = []
    if page.prev_cursor:
        buttons.append(button("Previous", PREV_ACTION, pack(search, domain or "", page.prev_cursor)))
    if page.next_cursor:
        buttons.append(button("Next", NEXT_ACTION, pack(search, domain or "", page.next_cursor)))
    if buttons:
        blocks.append(actions(*buttons))
    return message(text, blocks)


def _context(page: MailboxPage) -> dict:
    return context(f"From the mailbox cache, last synced {when(page.last_ok_at)}. `mailbox sync` refreshes it now.")


def _checkbox(block_id: str, label: str, checked: bool) -> dict:
    on = option(label, "on")
    return input_block(block_id, label, checkboxes([on], [on] if checked else None), optional=True)


def password_inputs(hint: str) -> list[dict]:
    generate = option("Generate a strong password (20 characters)", "generate")
    return [
        input_block("password_mode", "Password", radio_buttons([generate, option("I'll type one", "typed")], generate)),
        input_block("password", "Typed password", text_input(3000), optional=True, hint=hint),
    ]


def _domain_input(domains: list[str]) -> dict:
    """The domain of a new mailbox or routing rule: a select of the cached domains, or a
    text field while none is cached."""
    if domains:
        return input_block("domain", "Domain", static_select([option(d, d) for d in domains]))
    return input_block("domain", "Domain", text_input(253), hint="No domains are cached yet; type the domain name.")


def add_modal(domains: list[str], channel_id: str) -> dict:
    return modal("Add a mailbox", [
        _domain_input(domains),
        input_block("local_part", "Mailbox name (before the @)", text_input(64, placeholder="alice")),
        *password_inputs("Only if you chose to type one: at least 8 characters."),
        _checkbox("password_reset", "Allow password reset", False),
        _checkbox("search_indexing", "Search indexing", True),
        _checkbox("welcome_email", "Send a welcome email", False),
    ], callback_id=ADD_CALLBACK, submit="Create", private_metadata=channel_id)


def reset_modal(address: str, channel_id: str) -> dict:
    return modal("Reset password", [
        section(f"New password for {code(address)}. Its current sessions keep working until they log in again."),
        *password_inputs("Only if you chose to type one: at least 8 characters."),
    ], callback_id=RESET_CALLBACK, submit="Reset", private_metadata=modal_metadata(channel_id, address))


def password_once_blocks(address: str, generated: str | None, what: str, hint: str = "") -> tuple[str, list[dict]]:
    """The one message about a new password: ephemeral, to the admin who asked. A generated
    password is shown here, once; a typed one is never echoed back."""
    if generated is None:
        text = f"{what} {address}, with the password you typed."
        lines = [f":key: {escape(what)} {code(address)}, with the password you typed (not shown again)."]
    else:
        text = f"{what} {address}. Its password is shown only here, once."
        lines = [f":key: {escape(what)} {code(address)}.",
                 f"Password (shown only here, once; it is not kept anywhere): {code(generated)}"]
    if hint:
        lines.append(f"Strength: {escape(hint)}")
    return message(text, [section("\n".join(lines))])


def password_shown_words(address: str, what: str) -> str:
    """What a kept-open form says once the new password is in the admin's ephemeral message."""
    return (f":white_check_mark: {escape(what)} {code(address)}. Its password is in the bot's message in the channel, "
            "shown only to you, once.")


def password_lost_words(address: str, what: str, command: str) -> str:
    """What a kept-open form says when Slack would not show the new password ephemerally."""
    return (f":warning: {escape(what)} {code(address)}, but Slack would not show you its new password in that "
            "channel, and a password is never sent as a direct message (that would stay in Slack's history). "
            "It is not kept anywhere.\nTo get one, reset the password: "
            f"{code(f'{command} mailbox show {address}')} → *Reset password*, from a channel the bot is in "
            "(or invite the bot to this one first).")


def user_blocks(details: UserDetails) -> tuple[str, list[dict]]:
    a = details.address
    on = {True: "on", False: "off"}
    lines = [f"*{code(a)}*",
             f"Two-factor authentication required: *{on[details.require_two_factor_authentication]}*",
             f"Search indexing: *{on[details.enable_search_indexing]}*",
             f"Password recovery: *{on[details.recovery_enabled]}*, "
             f"{len(details.reset_methods)} recovery method(s)"]
    buttons = [
        button("Reset password", RESET_ACTION, a),
        button(f"Turn 2FA {on[not details.require_two_factor_authentication]}", TWO_FACTOR_ACTION,
                toggle_value(not details.require_two_factor_authentication, a)),
        button(f"Turn search indexing {on[not details.enable_search_indexing]}", SEARCH_ACTION,
                toggle_value(not details.enable_search_indexing, a)),
        button("Recovery methods", RECOVERY_ACTION, a),
        button("Delete", DELETE_ACTION, a, style="danger",
                confirm=confirm("Delete this mailbox?", f"{code(a)} and all its mail will be deleted in 24 hours, "
                                 "unless someone cancels.", "Schedule deletion")),
    ]
    return message(f"Mailbox {a}", [section("\n".join(lines)), actions(*buttons)])


def recovery_blocks(address: str, methods: list) -> tuple[str, list[dict]]:
    blocks: list[dict] = [section(f"*Recovery methods of {code(address)}*" + ("" if methods else "\n_none_"))]
    for m in methods[:40]:
        line = (f"{escape(m.type)} {code(m.target)}" + (f" — {escape(m.description)}" if m.description else "")
                + (" (may also reset 2FA)" if m.allow_mfa_reset else ""))
        ask = confirm("Remove this recovery method?",
                      f"{code(m.target)} will no longer be able to reset {code(address)}'s password.", "Remove")
        blocks.append(section(line, button("Remove", RECOVERY_REMOVE_ACTION, pack(address, m.target), confirm=ask)))
    blocks.append(actions(button("Add or update a method", RECOVERY_ADD_ACTION, address)))
    return message(f"Recovery methods of {address}", blocks)


def recovery_modal(address: str, channel_id: str) -> dict:
    kinds = [option("Email address", "email"), option("Phone number", "phone")]
    return modal("Recovery method", [
        input_block("type", "Kind", static_select(kinds, kinds[0])),
        input_block("target", "Email address or phone number", text_input(320)),
        input_block("description", "Description", text_input(100), optional=True),
    ], callback_id=RECOVERY_CALLBACK, submit="Save", private_metadata=modal_metadata(channel_id, address))


def sync_report_blocks(report: SyncReport) -> tuple[str, list[dict]]:
    if report.error:
        text = f"User sync failed; the cache was left as it was. {report.error}"
        return message(text, [section(f":x: *User sync failed*; the cache was left as it was.\n"
                                      f"{escape(report.error)}")])
    text = f"User sync: {len(report.added)} added, {len(report.removed)} removed, {report.total} in all."
    lines = [f":arrows_counterclockwise: *User sync*: {len(report.added)} added, {len(report.removed)} removed, "
             f"{report.total} mailboxes in all."]
    if report.added:
        lines.append("Added: " + ", ".join(code(a) for a in report.added[:30]) + _more(report.added, 30))
    if report.removed:
        lines.append("Removed: " + ", ".join(code(a) for a in report.removed[:30]) + _more(report.removed, 30))
    if report.capped:
        lines.append(f":warning: PurelyMail returned exactly {report.total} addresses, its maximum for one list: "
                     "there may be more mailboxes than the cache shows.")
        text += " PurelyMail may have cut the list short."
    if report.distrust:
        kept = (f"{report.held_back} cached mailbox(es) it did not list were kept" if report.held_back
                else "nothing was removed")
        lines.append(f":warning: The list was not trusted to remove anything ({escape(report.distrust)}): {kept}, "
                     "and counts shown before a deletion say the cache may be incomplete.")
        if not report.capped:
            lines.append("If those mailboxes really were deleted at PurelyMail, `mailbox sync confirm` removes them "
                         "from the cache.")
        text += f" Nothing removed: {report.distrust}."
    return message(text, [section("\n".join(lines))])


def _more(items: list, shown: int) -> str:
    return f" and {len(items) - shown} more" if len(items) > shown else ""
