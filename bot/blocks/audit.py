"""Block Kit for `audit`: one line per entry, and an "Older" button."""

from __future__ import annotations

import json

from bot.blocks.kit import actions, button, header, line_sections, message, said, slack_date
from bot.mrkdwn import clip, code, escape
from bot.payloads import audit_page_value
from db.models import AuditEntry
from purelyops.audit_query import AuditQuery

OLDER_ACTION = "audit_older"
ICONS = {"ok": ":white_check_mark:", "refused": ":no_entry:", "failed": ":x:"}


def audit_blocks(entries: list[AuditEntry], more: bool, query: AuditQuery) -> tuple[str, list[dict]]:
    if not entries:
        return said("No audit entries match.")
    lines = []
    for entry in entries:
        who = f"<@{escape(entry.actor_id)}>" if entry.actor_id[:1] in "UW" else escape(entry.actor_id)
        params = f" {code(json.dumps(entry.params, sort_keys=True))}" if entry.params else ""
        detail = f" — {escape(entry.detail)}" if entry.detail else ""
        at = slack_date(entry.at, "{date_short} {time}", f"{entry.at:%Y-%m-%d %H:%M}")
        lines.append(f"{ICONS.get(entry.result, '•')} {at} "
                     f"{who} *{escape(entry.action)}* {code(entry.target) if entry.target else ''}{params}{detail}")
    blocks = [header("Audit log"), *line_sections([clip(line, 1000) for line in lines])]
    if more:
        blocks.append(actions(button("Older", OLDER_ACTION, audit_page_value(query, entries[-1].id))))
    return message(f"{len(entries)} audit entries", blocks)
