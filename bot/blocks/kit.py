"""Small Block Kit pieces shared by the builders, within Slack's limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.mrkdwn import clip


def plain(text: str) -> dict:
    """A plain_text object, cut to 75 characters (the limit for labels and button texts)."""
    return {"type": "plain_text", "text": clip(text, 75)}


def section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, 3000)}}


def notice_modal(title: str, blocks: list[dict]) -> dict:
    """A modal that only tells something (no inputs, no submit): a kept-open form's outcome."""
    return {"type": "modal", "title": {"type": "plain_text", "text": clip(title or "purelyops", 24)},
            "close": {"type": "plain_text", "text": "Close"}, "blocks": blocks[:100]}


def button(text: str, action_id: str, value: str, style: str | None = None, confirm: dict | None = None) -> dict:
    element: dict[str, Any] = {"type": "button", "text": plain(text), "action_id": action_id, "value": value[:2000]}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm(title: str, text: str, yes: str, no: str = "Back") -> dict:
    """The dialog a destructive button asks through."""
    return {"title": plain(title), "text": {"type": "mrkdwn", "text": clip(text, 300)}, "confirm": plain(yes),
            "deny": plain(no), "style": "danger"}


def when(at: datetime | None, never: str = "never") -> str:
    """A time each reader sees in their own time zone (UTC in the fallback text)."""
    if at is None:
        return never
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"
