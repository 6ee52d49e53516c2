"""Block Kit for domains: the add flow, the live check, the list and the monitor's alerts."""

from __future__ import annotations

from bot.blocks.kit import (
    actions,
    button,
    confirm,
    context,
    header,
    input_block,
    message,
    modal,
    said,
    section,
    text_input,
    when,
)
from bot.mrkdwn import clip, code, escape
from db.models import Domain
from purelyops.dnscheck import DomainCheck, RecordResult
from purelyops.domains import BADGES, AddOutcome, DomainPage, badges_of

ADD_CALLBACK = "domain_add"
ADD_RETRY_ACTION = "domain_add_retry"
CHECK_ACTION = "domain_check_again"
RECHECK_ACTION = "domain_recheck"
REMOVE_ACTION = "domain_remove"
PREV_ACTION = "domain_list_previous"
NEXT_ACTION = "domain_list_next"

ICONS = {"pass": ":white_check_mark:", "warn": ":warning:", "fail": ":x:", None: ":grey_question:"}
LABELS = {"ownership": "Ownership TXT", "mx": "MX", "spf": "SPF", "dkim1": "DKIM 1", "dkim2": "DKIM 2",
          "dkim3": "DKIM 3", "dmarc": "DMARC"}


def _names(ascii_name: str, unicode_name: str) -> str:
    """`xn--bcher-kva.example` (bücher.example) for IDNs; the name alone otherwise."""
    return code(ascii_name) + (f" ({escape(unicode_name)})" if unicode_name and unicode_name != ascii_name else "")


def add_modal(channel_id: str) -> dict:
    return modal("Add a domain", [
        input_block("name", "Domain name", text_input(255, placeholder="example.com"),
                    hint="Like example.com. Internationalised names are fine."),
    ], callback_id=ADD_CALLBACK, submit="Add", private_metadata=channel_id)


def ownership_needed_blocks(outcome: AddOutcome, fix: str) -> tuple[str, list[dict]]:
    """addDomain was not called: publish the ownership TXT first, then Check again."""
    name = outcome.name
    text = f"Publish the ownership TXT record on {name.ascii} first; then press Check again."
    seen = ""
    if outcome.lookup_problem:
        seen = f"\nWhat DNS says now: {escape(outcome.lookup_problem)}."
    elif outcome.seen_txt:
        shown = "\n".join(code(clip(t, 200)) for t in outcome.seen_txt[:5])
        seen = f"\nTXT records there now, none of them this account's code:\n{shown}"
    else:
        seen = "\nThere is no TXT record there yet."
    blocks = [
        section(f":hourglass_flowing_sand: *{_names(name.ascii, name.unicode)} is not added yet.* PurelyMail "
                 f"only accepts a domain whose owner proves it with a TXT record. Publish this record at your DNS "
                 f"host (name `@`, type TXT), wait a minute, then press *Check again*:{seen}"),
        section(f"```{escape(fix)}```"),
        actions(button("Check again", ADD_RETRY_ACTION, name.ascii, style="primary")),
    ]
    return message(text, blocks)


def record_block(record: RecordResult) -> dict:
    lines = [f"{ICONS[record.status]} *{LABELS[record.kind]}* {code(record.name)}: {escape(record.message)}",
             f"expected: {code(clip(record.expected, 400))}"]
    found = ", ".join(code(clip(f, 300)) for f in record.found[:5]) or "_nothing_"
    lines.append(f"found: {found}")
    if record.status != "pass":
        lines.append(f"fix:\n```{escape(record.fix)}```")
    return section("\n".join(lines))


def check_blocks(check: DomainCheck, *, kinds: tuple[str, ...] | None = None,
                 intro: str = "") -> tuple[str, list[dict]]:
    """Each record with what was expected, what was found, its badge and the exact fix."""
    records = [r for r in check.records if kinds is None or r.kind in kinds]
    failing = [r for r in records if r.status == "fail"]
    verdict = ("all records are in place" if not failing
               else f"{len(failing)} of {len(records)} records need fixing")
    text = f"{check.domain}: {verdict}."
    where = {"configured": "the configured DNS server", "authoritative": "the domain's own nameservers",
             "system": "the system resolver"}.get(check.mode, check.mode)
    blocks: list[dict] = []
    if intro:
        blocks.append(section(intro))
    blocks.append(section(f"*{_names(check.domain, check.unicode_domain)}*: {verdict}."))
    blocks.extend(record_block(r) for r in records)
    blocks.append(context(
        f"Asked {where} ({escape(', '.join(check.servers) or 'none found')}) in {check.elapsed * 1000:.0f} ms."))
    blocks.append(actions(*domain_buttons(check.domain)))
    return message(text, blocks)


def domain_buttons(name: str) -> list[dict]:
    return [
        button("Check again", CHECK_ACTION, name),
        button("Ask PurelyMail to recheck", RECHECK_ACTION, name),
        button("Remove domain", REMOVE_ACTION, name, style="danger", confirm=confirm(
            "Remove this domain?", f"{code(name)} and every mailbox on it will be deleted in 24 hours, unless someone "
            "cancels.", "Schedule removal", "Keep it")),
    ]


def added_blocks(outcome: AddOutcome) -> tuple[str, list[dict]]:
    assert outcome.check is not None
    intro = (f":tada: *{_names(outcome.name.ascii, outcome.name.unicode)} was added to PurelyMail.* "
             "Now publish the other six records below; each shows what is there and the line to publish.")
    _, blocks = check_blocks(outcome.check, kinds=("mx", "spf", "dkim1", "dkim2", "dkim3", "dmarc"), intro=intro)
    return message(f"{outcome.name.ascii} was added to PurelyMail.", blocks)


def _badges(row: Domain) -> str:
    stored = badges_of(row.check)
    if stored:
        return " ".join(f"{ICONS[stored[b]]}{b.upper()}" for b in BADGES)
    purelymail = {"mx": row.passes_mx, "spf": row.passes_spf, "dkim": row.passes_dkim, "dmarc": row.passes_dmarc}
    return " ".join(f"{ICONS['pass' if purelymail[b] else 'fail']}{b.upper()}" for b in BADGES)


def list_blocks(page: DomainPage) -> tuple[str, list[dict]]:
    if not page.total:
        text = "There are no domains on the PurelyMail account yet. Add one with `domain add example.com`."
        return said(text)
    end = page.start + len(page.domains) - 1
    text = f"Domains {page.start}–{end} of {page.total} ({page.failing} failing)"
    blocks: list[dict] = [header(f"Domains ({page.total})")]
    for row in page.domains:
        checked = "checked " + when(row.last_checked_at) if row.last_checked_at else "not checked yet"
        blocks.append(section(f"{_badges(row)}  *{_names(row.name, row.unicode_name)}*  _{checked}_"))
    blocks.append(context(f"{page.start}–{end} of {page.total} · {page.failing} failing, listed first · "
                          "badges from the bot's last DNS check, or PurelyMail's until then"))
    buttons = []
    if page.prev_cursor:
        buttons.append(button("Previous", PREV_ACTION, page.prev_cursor))
    if page.next_cursor:
        buttons.append(button("Next", NEXT_ACTION, page.next_cursor))
    if buttons:
        blocks.append(actions(*buttons))
    return message(text, blocks)


def recheck_blocks(row: Domain) -> tuple[str, list[dict]]:
    flags = {"MX": row.passes_mx, "SPF": row.passes_spf, "DKIM": row.passes_dkim, "DMARC": row.passes_dmarc}
    badges = " ".join(f"{ICONS['pass' if ok else 'fail']}{name}" for name, ok in flags.items())
    states = ", ".join(f"{k} {'ok' if v else 'failing'}" for k, v in flags.items())
    text = f"PurelyMail re-checked {row.name}: " + states
    return message(text, [section(f"PurelyMail re-checked {code(row.name)}: {badges}")])


def alert_blocks(name: str, broken: list[RecordResult], recovered: list[str]) -> tuple[str, list[dict]]:
    """One message per domain per change: what broke (with the fix) and what recovered."""
    parts = []
    if broken:
        parts.append(f"{len(broken)} record(s) now failing")
    if recovered:
        parts.append(f"{len(recovered)} passing again")
    text = f"DNS for {name}: " + " and ".join(parts) + "."
    icon = ":rotating_light:" if broken else ":large_green_circle:"
    blocks = [section(f"{icon} *DNS for {code(name)} changed.*")]
    blocks.extend(record_block(r) for r in broken[:8])
    if recovered:
        blocks.append(section(":white_check_mark: Passing again: " + ", ".join(LABELS[k] for k in recovered)))
    return message(text, blocks)
