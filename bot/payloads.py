"""What a button or a modal carries: each encoding of a button's `value` and a modal's
`private_metadata`, packed by the builders in bot/blocks and unpacked by the listeners,
here in one place so that both sides agree. Buttons already in Slack's history keep
working: the formats are the ones they were posted with.

Several parts are joined with the unit separator (\\x1f), which nobody types. A modal's
metadata starts with the channel it was opened from (`bot.request` reads it); a modal
with nothing else carries just that channel id.
"""

from __future__ import annotations

import json
from datetime import timedelta

from purelyops.audit_query import AuditQuery
from purelyops.errors import Refused

SEPARATOR = "\x1f"


class Stale(Refused):
    """A button or form that does not carry what its listener reads (made by an older
    version of the bot, or by hand)."""

    def __init__(self, words: str = "That button is out of date; run the command again.") -> None:
        super().__init__(words)


def pack(*parts: object) -> str:
    return SEPARATOR.join(str(part) for part in parts)


def unpack(value: str, count: int) -> list[str]:
    """The `count` parts of a packed value; missing ones are ""."""
    parts = value.split(SEPARATOR, count - 1)
    return parts + [""] * (count - len(parts))


def modal_metadata(channel_id: str, *parts: object) -> str:
    """A modal's private_metadata: the channel it was opened from, then its own parts."""
    return pack(channel_id, *parts)


def read_modal_metadata(metadata: str) -> tuple[str, str]:
    """(channel id, the modal's own value)."""
    channel, value = unpack(metadata, 2)
    return channel, value


def number(value: str) -> int:
    """An id a button or a modal carries."""
    if not value.isdigit() or len(value) > 18:
        raise Stale()
    return int(value)


def toggle_value(turn_on: bool, address: str) -> str:
    """A button that turns a mailbox's setting on or off."""
    return f"{'on' if turn_on else 'off'}:{address}"


def read_toggle(value: str) -> tuple[bool, str]:
    state, _, address = value.partition(":")
    return state == "on", address


def audit_page_value(query: AuditQuery, before_id: int) -> str:
    """The audit log's Older button: the same query, before the last entry shown."""
    return json.dumps({"t": query.text, "u": query.user_id,
                       "s": int(query.since.total_seconds()) if query.since else None, "b": before_id})


def read_audit_page(value: str) -> AuditQuery:
    try:
        raw = json.loads(value)
        return AuditQuery(text=str(raw["t"] or "")[:200], user_id=raw["u"],
                          since=timedelta(seconds=int(raw["s"])) if raw["s"] else None, before_id=int(raw["b"]))
    except (ValueError, KeyError, TypeError):
        raise Stale("That button is out of date; run the audit command again.") from None
