"""Reading the audit trail: `audit [text] [user:@x] [since:7d]`, newest first, in pages."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select

from db.models import AuditEntry
from db.session import session_scope
from purelyops.errors import Refused
from purelyops.runtime import Runtime

PAGE = 15
_SINCE = re.compile(r"^(\d{1,4})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$|^([UW][A-Z0-9]+)$")


class BadQuery(Refused):
    """The filter words could not be understood; the message says how to write them."""


@dataclass(frozen=True)
class AuditQuery:
    text: str = ""
    user_id: str | None = None
    since: timedelta | None = None
    before_id: int | None = None  # keyset pagination: entries older than this id


def parse_query(words: list[str]) -> AuditQuery:
    text: list[str] = []
    user_id: str | None = None
    since: timedelta | None = None
    for word in words:
        if word.startswith("user:"):
            match = _MENTION.match(word[5:])
            if not match:
                raise BadQuery(f"`{word[:40]}` is not a user: write user:@name (pick the person from the list).")
            user_id = match.group(1) or match.group(2)
        elif word.startswith("since:"):
            match = _SINCE.match(word[6:])
            if not match:
                raise BadQuery("since: takes a number and a unit, like since:30m, since:12h, since:7d or since:2w.")
            since = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        else:
            text.append(word)
    query = " ".join(text)
    if len(query) > 200:
        raise BadQuery("The search text is too long (200 characters at most).")
    return AuditQuery(text=query, user_id=user_id, since=since)


def search(rt: Runtime, query: AuditQuery) -> tuple[list[AuditEntry], bool]:
    """One page of entries, newest first, and whether there are older ones."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(PAGE + 1)
    if query.text:
        pattern = "%" + query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(AuditEntry.action.ilike(pattern), AuditEntry.target.ilike(pattern),
                              AuditEntry.detail.ilike(pattern), AuditEntry.actor_name.ilike(pattern)))
    if query.user_id:
        stmt = stmt.where(AuditEntry.actor_id == query.user_id)
    if query.since:
        stmt = stmt.where(AuditEntry.at >= datetime.now(timezone.utc) - query.since)
    if query.before_id:
        stmt = stmt.where(AuditEntry.id < query.before_id)
    with session_scope(rt.database_url) as session:
        entries = list(session.scalars(stmt))
    return entries[:PAGE], len(entries) > PAGE
