"""The audit trail: every mutation and every refusal, with who, what, target and result.

`params` must never carry a secret; callers pass only what is safe to show.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from db.models import AuditEntry
from db.session import session_scope
from purelyops.runtime import Runtime


def record(
    session: Session,
    *,
    actor_id: str,
    action: str,
    target: str = "",
    params: dict[str, Any] | None = None,
    result: str = "ok",
    detail: str = "",
    actor_name: str = "",
) -> None:
    """Add an entry in the caller's transaction, so it commits with the change it records."""
    session.add(AuditEntry(actor_id=actor_id, actor_name=actor_name, action=action, target=target[:512],
                           params=params or {}, result=result, detail=detail))


def record_now(rt: Runtime, **entry: Any) -> None:
    """Add an entry in its own transaction (refusals and failures, where nothing else commits)."""
    with session_scope(rt.database_url) as session:
        record(session, **entry)
