"""Block Kit for `audit`: one line per entry, and an "Older" button."""

from __future__ import annotations

import json

from bot.mrkdwn import clip, code, escape
from bot.payloads import audit_page_value
from db.models import AuditEntry
from purelyops.audit_query import AuditQuery

OLDER_ACTION = "audit_older"
ICONS = {"ok": ":white_check_mark:", "refused": ":no_entry:", "failed": ":x:"}


def audit_blocks(entries: list[AuditEntry], more: bool, query: AuditQuery) -> tuple[str, list[dict]]:
    if not entries:
        return "No audit entries match.", [{"type": "section", "text": {"type": "mrkdwn", "text": "No audit entries match."}}]
    lines = []
    for entry in entries:
        who = f"<@{escape(entry.actor_id)}>" if entry.actor_id[:1] in "UW" else escape(entry.actor_id)
        params = f" {code(json.dumps(entry.params, sort_keys=True))}" if entry.params else ""
        detail = f" — {escape(entry.detail)}" if entry.detail else ""
        lines.append(f"{ICONS.get(entry.result, '•')} <!date^{int(entry.at.timestamp())}^{{date_short}} {{time}}|{entry.at:%Y-%m-%d %H:%M}> "
                     f"{who} *{escape(entry.action)}* {code(entry.target) if entry.target else ''}{params}{detail}")
    blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": "Audit log"}}]
    # A section holds 3,000 characters: put the lines in as few sections as fit.
    chunk = ""
    for line in lines:
        line = clip(line, 1000)
        if len(chunk) + len(line) + 1 > 2900:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
            chunk = ""
        chunk += ("\n" if chunk else "") + line
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    if more:
        value = audit_page_value(query, entries[-1].id)
        blocks.append({"type": "actions", "elements": [{"type": "button", "action_id": OLDER_ACTION,
                       "text": {"type": "plain_text", "text": "Older"}, "value": value}]})
    return f"{len(entries)} audit entries", blocks
