"""Block Kit for routing rules: the list, the add modal with presets, the result."""

from __future__ import annotations

from bot.blocks.kit import section
from bot.mrkdwn import code, escape
from purelyops.aliases import describe
from purelyops.purelymail import RoutingRule

ADD_CALLBACK = "alias_add"
MAX_SHOWN = 45




def _rule_line(rule: RoutingRule) -> str:
    targets = ", ".join(code(t) for t in rule.target_addresses[:10])
    more = f" and {len(rule.target_addresses) - 10} more" if len(rule.target_addresses) > 10 else ""
    return f"*#{rule.id}* {escape(describe(rule.prefix, rule.match_user, rule.catchall, rule.domain_name))} → {targets}{more}"


def list_blocks(rules: list[RoutingRule], domain: str | None) -> tuple[str, list[dict]]:
    where = f" on {domain}" if domain else ""
    if not rules:
        text = f"No routing rules{where}."
        return text, [section(text)]
    text = f"{len(rules)} routing rule(s){where}"
    blocks = [section(f"*{escape(text)}*")] + [section(_rule_line(r)) for r in rules[:MAX_SHOWN]]
    if len(rules) > MAX_SHOWN:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       f"…and {len(rules) - MAX_SHOWN} more: add a domain to narrow the list."}]})
    return text, blocks


def add_modal(domains: list[str], channel_id: str) -> dict:
    presets = [
        ("exact", "Exactly this address"),
        ("prefix", "Every address starting with…"),
        ("any", "Every address on the domain"),
        ("catchall", "Catch-all: any address that is not a mailbox"),
    ]
    options = [{"text": {"type": "plain_text", "text": label}, "value": value} for value, label in presets]
    domain_element = ({"type": "static_select", "action_id": "value",
                       "options": [{"text": {"type": "plain_text", "text": d}, "value": d} for d in domains[:100]]}
                      if domains else {"type": "plain_text_input", "action_id": "value", "max_length": 253})
    return {
        "type": "modal", "callback_id": ADD_CALLBACK, "private_metadata": channel_id,
        "title": {"type": "plain_text", "text": "Add a routing rule"},
        "submit": {"type": "plain_text", "text": "Create"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {"type": "input", "block_id": "domain", "label": {"type": "plain_text", "text": "Domain"},
             "element": domain_element},
            {"type": "input", "block_id": "preset", "label": {"type": "plain_text", "text": "Matches"},
             "element": {"type": "radio_buttons", "action_id": "value", "options": options,
                         "initial_option": options[0]}},
            {"type": "input", "block_id": "match", "optional": True,
             "label": {"type": "plain_text", "text": "Address or prefix (before the @)"},
             "hint": {"type": "plain_text", "text": "For the first two choices only."},
             "element": {"type": "plain_text_input", "action_id": "value", "max_length": 64}},
            {"type": "input", "block_id": "targets", "label": {"type": "plain_text", "text": "Deliver to"},
             "hint": {"type": "plain_text", "text": "Full addresses, one per line or separated by commas."},
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True, "max_length": 3000}},
        ],
    }


def created_blocks(rule: RoutingRule | None) -> tuple[str, list[dict]]:
    if rule is None:
        text = "The routing rule was created, but PurelyMail's list does not show it yet; check `alias list`."
        return text, [section(text)]
    return f"Routing rule #{rule.id} created.", [section(":white_check_mark: Created " + _rule_line(rule))]
