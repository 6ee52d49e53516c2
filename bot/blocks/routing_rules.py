"""Block Kit for routing rules: the list, the add modal with presets, the result."""

from __future__ import annotations

from bot.blocks.kit import (
    context,
    input_block,
    message,
    modal,
    option,
    options,
    radio_buttons,
    said,
    section,
    static_select,
    text_input,
)
from bot.mrkdwn import code, escape
from purelyops.purelymail import RoutingRule
from purelyops.routing_rules import describe

ADD_CALLBACK = "alias_add"
MAX_SHOWN = 45


def _rule_line(rule: RoutingRule) -> str:
    targets = ", ".join(code(t) for t in rule.target_addresses[:10])
    more = f" and {len(rule.target_addresses) - 10} more" if len(rule.target_addresses) > 10 else ""
    described = escape(describe(rule.prefix, rule.match_user, rule.catchall, rule.domain_name))
    return f"*#{rule.id}* {described} → {targets}{more}"


def list_blocks(rules: list[RoutingRule], domain: str | None) -> tuple[str, list[dict]]:
    where = f" on {domain}" if domain else ""
    if not rules:
        text = f"No routing rules{where}."
        return said(text)
    text = f"{len(rules)} routing rule(s){where}"
    blocks = [section(f"*{escape(text)}*")] + [section(_rule_line(r)) for r in rules[:MAX_SHOWN]]
    if len(rules) > MAX_SHOWN:
        blocks.append(context(f"…and {len(rules) - MAX_SHOWN} more: add a domain to narrow the list."))
    return message(text, blocks)


def add_modal(domains: list[str], channel_id: str) -> dict:
    presets = options([
        ("exact", "Exactly this address"),
        ("prefix", "Every address starting with…"),
        ("any", "Every address on the domain"),
        ("catchall", "Catch-all: any address that is not a mailbox"),
    ])
    domain = static_select([option(d, d) for d in domains]) if domains else text_input(253)
    return modal("Add a routing rule", [
        input_block("domain", "Domain", domain),
        input_block("preset", "Matches", radio_buttons(presets, presets[0])),
        input_block("match", "Address or prefix (before the @)", text_input(64), optional=True,
                    hint="For the first two choices only."),
        input_block("targets", "Deliver to", text_input(3000, multiline=True),
                    hint="Full addresses, one per line or separated by commas."),
    ], callback_id=ADD_CALLBACK, submit="Create", private_metadata=channel_id)


def created_blocks(rule: RoutingRule | None) -> tuple[str, list[dict]]:
    if rule is None:
        text = "The routing rule was created, but PurelyMail's list does not show it yet; check `rule list`."
        return said(text)
    return message(f"Routing rule #{rule.id} created.", [section(":white_check_mark: Created " + _rule_line(rule))])
