"""Block Kit for credential links: the link's channel message, its thread announcements,
`gather list` and `gather show`, the two modals, and the outcome of Create jobs.

The link itself (its token) is shown only in messages to the one admin who asks; what a
channel can read never holds it, nor any password. Whatever a person typed on the public
form (a name, an address) is escaped like anything else the bot echoes.
"""

from __future__ import annotations

from typing import Any

from bot.blocks.kit import button, confirm, message, plain, said, section, when
from bot.mrkdwn import clip, code, escape
from bot.payloads import Stale, modal_metadata, number, unpack
from db.models import GatherSubmission, SourceServer
from purelyops.gather import (
    EXPIRY_DAYS,
    MAX_DOMAINS,
    Existence,
    JobsOutcome,
    LinkState,
    LinkSummary,
    Planned,
    link_domains,
)

NEW_CALLBACK = "gather_new"
CREATE_CALLBACK = "gather_create_jobs"
SHOW_LINK_ACTION = "gather_show_link"
SHOW_ACTION = "gather_show"
CLOSE_ACTION = "gather_close"
CREATE_ACTION = "gather_create"
APPROVE_BLOCK = "approve_"  # Create jobs: approve_0, approve_1… (ten rows each, Slack's most per checkboxes)
APPROVALS_PER_BLOCK = 10
MAX_LISTED = 40
STATE_ICONS = {LinkState.ACTIVE: ":large_green_circle:", LinkState.EXPIRED: ":hourglass:",
               LinkState.CLOSED: ":no_entry_sign:"}


def _title(summary: LinkSummary) -> str:
    name = f" {escape(clip(summary.link.name, 80))}" if summary.link.name else ""
    return f"*Credential link {summary.link.id}*{name}"


def _state(summary: LinkSummary) -> str:
    link = summary.link
    if summary.state is LinkState.CLOSED:
        return f"closed {when(link.closed_at)}"
    if summary.state is LinkState.EXPIRED:
        return f"expired {when(link.expires_at)}"
    return f"open until {when(link.expires_at)}"


def _counts(summary: LinkSummary) -> str:
    return f"{summary.submissions} submission(s), {summary.with_jobs} with a migration job"


def _close_button(link_id: int) -> dict:
    return button("Close link", CLOSE_ACTION, str(link_id), "danger", confirm(
        "Close this link?", "The form answers \"This form has closed\" from now on. What was submitted stays "
        "until its jobs are created, or for the credential retention period.", "Close it"))


def link_blocks(summary: LinkSummary, url: str | None = None) -> tuple[str, list[dict]]:
    """The link's message in the channel: the link while its form is open (`url`), the
    server, the expiry and the counts. Accepted submissions are announced in its thread."""
    link = summary.link
    text = f"Credential link {link.id}: {summary.state.value}, {_counts(summary)}"
    lines = [f"{STATE_ICONS[summary.state]} {_title(summary)}: people give the login of their old mailbox on a web "
             "form, never in Slack.",
             f"Source server *{escape(link.source_name)}* ({code(link.source_host)}) · {_state(summary)}",
             _domains_line(link),
             f"{_counts(summary)}. Each accepted submission is announced in this thread."]
    if summary.state is LinkState.ACTIVE and url:
        lines.insert(1, f":link: Send this link to the people whose mailboxes move: {escape(url)}")
    buttons = [button("Show submissions", SHOW_ACTION, str(link.id))]
    if summary.state is LinkState.ACTIVE:
        buttons.append(_close_button(link.id))
    return message(text, [section("\n".join(lines)), {"type": "actions", "elements": buttons}])


def _domains_line(link) -> str:
    domains = link_domains(link)
    if not domains:
        return "Mail goes to the domain chosen in Create jobs; the form takes no new address."
    others = f"; a new address may also be at {', '.join(code(d) for d in domains[1:])}" if domains[1:] else ""
    return f"Mail goes to the same name at {code(domains[0])}{others}. Nothing outside these is taken."


def link_secret_blocks(summary: LinkSummary, url: str) -> tuple[str, list[dict]]:
    """The link, for the one admin who asked (ephemeral, or in their own modal)."""
    text = f"The link of credential link {summary.link.id} (only you can see this)"
    return message(text, [section(f":link: {_title(summary)}, {_state(summary)}. Only you can see this message.\n"
                          f"```{escape(url)}```"),
                  section("Send it to the people whose mailboxes move. Anyone who has it can submit a login until "
                          "it closes; each login is checked on the source server before anything is kept.")])


def announcement_blocks(submission: GatherSubmission) -> tuple[str, list[dict]]:
    """A thread message for one accepted submission: who, never a password."""
    where = f" New address: {submission.new_address}." if submission.new_address else ""
    text = f"{submission.full_name} ({submission.email}) gave the login of their old mailbox.{where}"
    lines = [f":inbox_tray: *{escape(clip(submission.full_name, 200))}* ({code(clip(submission.email, 320))}) "
             "gave the login of their old mailbox; it was checked on the source server."]
    if submission.new_address:
        lines.append(f"New address: {code(submission.new_address)}")
    return message(clip(text, 3000), [section("\n".join(lines))])


def list_blocks(summaries: list[LinkSummary]) -> tuple[str, list[dict]]:
    if not summaries:
        text = "No credential links yet. An admin creates one with `gather new`."
        return said(text)
    text = f"{len(summaries)} credential link(s)"
    lines = [f"{STATE_ICONS[s.state]} {_title(s)} · {escape(s.link.source_name)} · {s.state.value}, "
             f"{_state(s)} · {_counts(s)}" for s in summaries[:MAX_LISTED]]
    return message(text, _sections([f"*{text}* (newest first)", *lines]))


def _destination(planned: Planned) -> str:
    row = planned.submission
    if row.job_id is not None:
        return f"migration #{row.job_id}"
    if planned.destination is None:
        if planned.problem.startswith("no new address"):
            local = row.email.rpartition("@")[0]
            return f"→ {code(clip(local, 64) + '@…')} (on the domain chosen in Create jobs)"
        return f":warning: {escape(planned.problem)}"
    if planned.needs_approval:
        state = ":warning: exists, its password was not proven: copied into only with your approval in Create jobs"
    elif planned.proven:
        state = "exists, its password was proven"
    else:
        state = {Existence.EXISTS: "exists", Existence.WILL_BE_CREATED: "will be created",
                 Existence.UNCHECKED: "not in the mailbox cache (checked at Create jobs)"}.get(planned.existence, "")
    return f"→ {code(planned.destination)} · {state}".rstrip(" ·")


def show_blocks(summary: LinkSummary, planned: list[Planned]) -> tuple[str, list[dict]]:
    """`gather show`: each submission with its destination and whether that mailbox exists."""
    text = f"Credential link {summary.link.id}: {_counts(summary)}"
    lines = [f"{_title(summary)} · {escape(summary.link.source_name)} · {_state(summary)} · {_counts(summary)}"]
    if not planned:
        lines.append("Nobody has submitted a login yet.")
    for item in planned[:MAX_LISTED]:
        row = item.submission
        lines.append(f"• *{escape(clip(row.full_name, 80))}* {code(clip(row.email, 120))} {_destination(item)}")
    if len(planned) > MAX_LISTED:
        lines.append(f"…and {len(planned) - MAX_LISTED} more: Create jobs lists each one before it runs")
    blocks = _sections(lines)
    buttons = []
    if summary.waiting and summary.link.source_server_id is not None:
        buttons.append(button("Create jobs", CREATE_ACTION, str(summary.link.id), "primary"))
    if summary.state is LinkState.ACTIVE:
        buttons.append(_close_button(summary.link.id))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    return message(text, blocks)


def _sections(lines: list[str], limit: int = 2900) -> list[dict]:
    """Lines packed into as few sections as Slack's 3,000 characters allow (at most 45)."""
    chunks: list[str] = []
    for line in lines:
        line = clip(line, limit)
        if chunks and len(chunks[-1]) + 1 + len(line) <= limit:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line)
    return [section(chunk) for chunk in chunks[:45]]


def _input(block_id: str, label: str, element: dict, *, optional: bool = False, hint: str = "") -> dict:
    block: dict[str, Any] = {"type": "input", "block_id": block_id, "label": plain(label), "element": element,
                             "optional": optional}
    if hint:
        block["hint"] = plain(hint)
    return block


def _options(pairs: list[tuple[str, str]]) -> list[dict]:
    return [{"text": plain(label), "value": value} for value, label in pairs]


def new_modal(servers: list[SourceServer], domains: list[str], channel_id: str) -> dict:
    expiry = _options([(str(days), f"{days} days") for days in EXPIRY_DAYS])
    hint = ("Where the mail goes: a person who gives no new address moves to the same name at the first domain; "
            "a new address must be at one of these. Nothing else is taken.")
    if 0 < len(domains) <= 100:
        element = {"type": "multi_static_select", "action_id": "value", "max_selected_items": MAX_DOMAINS,
                   "options": _options([(d, d) for d in domains]), "placeholder": plain("Choose the domain(s)")}
    else:
        element = {"type": "plain_text_input", "action_id": "value", "max_length": 1000,
                   "placeholder": plain("example.com, other.example")}
    return {"type": "modal", "callback_id": NEW_CALLBACK, "private_metadata": channel_id,
            "title": plain("New credential link"), "submit": plain("Create link"), "close": plain("Cancel"),
            "blocks": [
                section("People open the link and type the address and password of their old mailbox. The bot "
                        "tries that login on the source server before it keeps anything, and keeps the password "
                        "encrypted. The link is shown only to you."),
                _input("server", "Source server", {"type": "static_select", "action_id": "value", "options": _options(
                    [(str(s.id), f"{s.name} ({s.host})") for s in servers[:100]])}),
                _input("domains", "Destination domain(s)", element, hint=hint),
                _input("expiry", "Expires after", {"type": "static_select", "action_id": "value", "options": expiry,
                                                   "initial_option": expiry[EXPIRY_DAYS.index(7)]}),
                _input("name", "Name", {"type": "plain_text_input", "action_id": "value", "max_length": 80},
                       optional=True, hint="The form says who is asking with it, like \"Acme IT, mail move\"."),
            ]}


def create_modal(summary: LinkSummary, page: list[Planned], total: int, domains: list[str],
                 channel_id: str) -> dict:
    """Create jobs: every row it will run listed first (at most one page; the rest wait for
    the next Create jobs, and it says how many), each existing mailbox whose password was not
    proven offered for approval (unticked), dry run on by default, and the usual options."""
    link = summary.link
    dry = _options([("dry", "Dry run: check, copy nothing")])
    rest = total - len(page)
    intro = (f"These {len(page)} submission(s) of credential link {link.id} become one batch of migrations from "
             f"*{escape(link.source_name)}*. A destination mailbox that does not exist is created with a generated "
             "password, shown once, only to you. A mailbox that exists is copied into only with its own password, "
             "proven when it was given, or with your approval below; otherwise its row is skipped.")
    if rest:
        intro += f"\n:information_source: {rest} more wait after these; Create jobs again lists them next."
    lines = [intro, f"*Rows 1–{len(page)} of {total} waiting:*"]
    for item in page:
        row = item.submission
        lines.append(f"• *{escape(clip(row.full_name, 80))}* {code(clip(row.email, 120))} {_destination(item)}")
    blocks: list[dict] = _sections(lines)
    without = sum(1 for item in page if item.destination is None and item.problem.startswith("no new address"))
    if without and not link_domains(link):
        hint = f"{without} submission(s) gave no new address: same name before the @, on this domain."
        if 0 < len(domains) <= 100:
            element = {"type": "static_select", "action_id": "value", "options": _options([(d, d) for d in domains])}
        else:
            element = {"type": "plain_text_input", "action_id": "value", "max_length": 253,
                       "placeholder": plain("example.com")}
        blocks.append(_input("domain", "Destination domain", element, hint=hint))
    asked = [item for item in page if item.needs_approval]
    for start in range(0, len(asked), APPROVALS_PER_BLOCK):
        chunk = asked[start:start + APPROVALS_PER_BLOCK]
        options = [{"text": plain(clip(f"{item.submission.email} → {item.destination}", 75)),
                    "description": plain(clip(item.reason, 75)),
                    "value": str(item.submission.id)} for item in chunk]
        label = "Copy into these existing mailboxes anyway" + (f" ({start + 1}–{start + len(chunk)})"
                                                              if len(asked) > APPROVALS_PER_BLOCK else "")
        blocks.append(_input(f"{APPROVE_BLOCK}{start // APPROVALS_PER_BLOCK}", label,
                             {"type": "checkboxes", "action_id": "value", "options": options}, optional=True,
                             hint="Unticked rows are skipped. Tick only mailboxes you know belong to these people: "
                                  "their mail is copied into them."))
    blocks += [
        _input("options", "Options", {"type": "checkboxes", "action_id": "value", "options": dry,
                                      "initial_options": dry}, optional=True),
        _input("exclude", "Folders to exclude (regular expression)",
               {"type": "plain_text_input", "action_id": "value", "max_length": 200}, optional=True,
               hint="Like ^Trash$|^Junk$"),
        _input("max_age", "Only mail newer than (days)",
               {"type": "plain_text_input", "action_id": "value", "max_length": 5}, optional=True),
    ]
    ids = ",".join(str(item.submission.id) for item in page)
    return {"type": "modal", "callback_id": CREATE_CALLBACK,
            "private_metadata": modal_metadata(channel_id, link.id, ids),
            "title": plain("Create migration jobs"), "submit": plain("Create jobs"), "close": plain("Cancel"),
            "blocks": blocks}


def read_create_metadata(value: str) -> tuple[int, tuple[int, ...]]:
    """(the link, the submissions its Create jobs modal listed)."""
    link, ids = unpack(value, 2)
    rows = tuple(number(part) for part in ids.split(",") if part)
    if not rows:
        raise Stale()
    return number(link), rows


def jobs_outcome_blocks(link_id: int, outcome: JobsOutcome, dry_run: bool) -> tuple[str, list[dict]]:
    """What Create jobs did, in words (no password: those go in their own message)."""
    kind = "dry run(s)" if dry_run else "migration(s) for real"
    if outcome.jobs:
        text = f"Credential link {link_id}: {outcome.jobs} {kind} queued as one batch"
        lines = [f":white_check_mark: *{escape(text)}*. Their progress is in the batch's message.",
                 f"{outcome.existing} destination mailbox(es) existed; {len(outcome.created)} created."]
    else:
        text = f"Credential link {link_id}: no migration was created"
        lines = [f":warning: *{escape(text)}*."]
    if outcome.problems:
        lines.append(f"Not created ({len(outcome.problems)}):")
        lines += [f"• {escape(clip(problem, 300))}" for problem in outcome.problems[:30]]
        if len(outcome.problems) > 30:
            lines.append(f"…and {len(outcome.problems) - 30} more")
    return message(text, _sections(lines))


def passwords_blocks(created: list[tuple[str, str]]) -> tuple[str, list[dict]]:
    """The generated passwords of the mailboxes Create jobs made: ephemeral, to the one
    admin who asked, once."""
    text = f"{len(created)} new mailbox(es). Their passwords are shown only here, once."
    lines = [f":key: *{escape(text)}* They are not kept anywhere; give each to its person."]
    lines += [f"{code(address)} {code(password)}" for address, password in created]
    return message(text, _sections(lines))


def passwords_shown_words(count: int) -> str:
    return (f":white_check_mark: {count} mailbox(es) created. Their passwords are in the bot's message in the "
            "channel, shown only to you, once.")


def passwords_lost_words(created: list[tuple[str, str]], command: str) -> str:
    """When Slack would not show the new passwords ephemerally: never a direct message."""
    first = created[0][0] if created else "alice@example.com"
    names = ", ".join(code(address) for address, _ in created[:20]) + (" …" if len(created) > 20 else "")
    return (f":warning: {len(created)} mailbox(es) were created ({names}), but Slack would not show you their "
            "passwords in that channel, and a password is never sent as a direct message. They are not kept "
            f"anywhere. To get one, reset it: {code(f'{command} mailbox show {first}')} → *Reset password*, from a "
            "channel the bot is in.")
