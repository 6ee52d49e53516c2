"""The deletion queue: domains, mailboxes and routing rules are deleted 24 hours after an
admin asks, unless someone cancels first. A scheduled job runs what is due. Every time is
the database's (now()), never a worker's clock. A deletion PurelyMail did not answer (a
5xx, a timeout, a garbled answer) is tried again with back-off, first reading whether it
was done after all; after MAX_TRIES it fails, and is said once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Domain, Mailbox, PendingDeletion
from db.session import session_scope
from purelyops import audit
from purelyops.errors import Refused
from purelyops.purelymail import NotFound, ProtocolError, PurelyMailError, Unavailable
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)
DELAY = timedelta(hours=24)
KINDS = {"domain": "domain", "user": "mailbox", "routing_rule": "routing rule"}
MAX_TRIES = 5  # tries PurelyMail did not answer before a deletion fails
BACKOFF = (60, 300, 900, 3600)  # seconds before the next try, after the 1st, 2nd, 3rd, 4th unanswered one


class NotPending(Refused):
    """The deletion was already cancelled, done, or never existed."""


@dataclass(frozen=True)
class Scheduled:
    deletion: PendingDeletion
    created: bool  # False: it was already scheduled (a double click, a retried request)


def schedule(rt: Runtime, *, kind: str, target: str, actor_id: str, detail: str = "",
             channel_id: str | None = None, delay: timedelta = DELAY) -> Scheduled:
    """Schedule a deletion once: a second request for the same target returns the first."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    with session_scope(rt.database_url) as session:
        row_id = session.execute(
            insert(PendingDeletion)
            .values(kind=kind, target=target, detail=detail, requested_by=actor_id, channel_id=channel_id,
                    due_at=func.now() + delay, status="pending")
            # The partial index's condition written out: as a bound parameter, PostgreSQL could not
            # match the index once the driver prepares the statement (after a few runs).
            .on_conflict_do_nothing(index_elements=["kind", "target"], index_where=text("status = 'pending'"))
            .returning(PendingDeletion.id)
        ).scalar()
        if row_id is not None:
            audit.record(session, actor_id=actor_id, action=f"{kind}.delete.schedule", target=target,
                         params={"due_in_hours": delay.total_seconds() / 3600})
        deletion = session.scalars(
            select(PendingDeletion).where(PendingDeletion.kind == kind, PendingDeletion.target == target,
                                          PendingDeletion.status == "pending")
        ).one()
        return Scheduled(deletion, created=row_id is not None)


def remember_message(rt: Runtime, deletion_id: int, channel_id: str, message_ts: str) -> None:
    with session_scope(rt.database_url) as session:
        session.execute(update(PendingDeletion).where(PendingDeletion.id == deletion_id)
                        .values(channel_id=channel_id, message_ts=message_ts))


def cancel(rt: Runtime, deletion_id: int, actor_id: str) -> PendingDeletion:
    with session_scope(rt.database_url) as session:
        deletion = session.scalars(
            update(PendingDeletion)
            .where(PendingDeletion.id == deletion_id, PendingDeletion.status == "pending")
            .values(status="cancelled", finished_at=func.now(), finished_by=actor_id)
            .returning(PendingDeletion)
        ).one_or_none()
        if deletion is None:
            raise NotPending("That deletion is no longer pending: it was already cancelled or carried out.")
        audit.record(session, actor_id=actor_id, action=f"{deletion.kind}.delete.cancel", target=deletion.target)
        return deletion


def pending(rt: Runtime) -> list[PendingDeletion]:
    with session_scope(rt.database_url) as session:
        return list(session.scalars(select(PendingDeletion).where(PendingDeletion.status == "pending")
                                    .order_by(PendingDeletion.due_at)))


def _still_there(rt: Runtime, deletion: PendingDeletion) -> bool:
    """Whether PurelyMail still has the target (read before trying again a deletion whose
    answer never came: it may have been done)."""
    if deletion.kind == "domain":
        return any(d.name.lower() == deletion.target.lower() for d in rt.purelymail.list_domains())
    if deletion.kind == "user":
        try:
            rt.purelymail.get_user(deletion.target)
        except NotFound:
            return False
        return True
    return any(rule.id == int(deletion.target) for rule in rt.purelymail.list_routing_rules())


def _execute(rt: Runtime, session: Session, deletion: PendingDeletion) -> None:
    """Delete at PurelyMail, then drop what our caches hold of it. Already gone counts as done."""
    try:
        if deletion.tries and not _still_there(rt, deletion):
            log.info("%s %s was deleted by an earlier try whose answer was lost", deletion.kind, deletion.target)
        elif deletion.kind == "domain":
            rt.purelymail.delete_domain(deletion.target)
        elif deletion.kind == "user":
            rt.purelymail.delete_user(deletion.target)
        else:
            rt.purelymail.delete_routing_rule(int(deletion.target))
    except NotFound:
        log.info("%s %s was already gone at PurelyMail", deletion.kind, deletion.target)
    if deletion.kind == "domain":
        session.execute(delete(Mailbox).where(Mailbox.domain == deletion.target))
        session.execute(delete(Domain).where(Domain.name == deletion.target))
    elif deletion.kind == "user":
        session.execute(delete(Mailbox).where(Mailbox.address == deletion.target))


def run_due(rt: Runtime, now: datetime | None = None) -> list[PendingDeletion]:
    """Run every due deletion once (due by the database's clock, or by `now`). Each runs
    inside the transaction that locks its row, so two runs at once cannot both execute it,
    and a crash leaves it pending for the next run. One that PurelyMail did not answer stays
    pending, due again after BACKOFF; the finished ones (done, or failed) are returned."""
    when = now if now is not None else func.now()
    finished: list[PendingDeletion] = []
    while True:
        with session_scope(rt.database_url) as session:
            deletion = session.scalars(
                select(PendingDeletion)
                .where(PendingDeletion.status == "pending", PendingDeletion.due_at <= when)
                .order_by(PendingDeletion.due_at).limit(1).with_for_update(skip_locked=True)
            ).one_or_none()
            if deletion is None:
                return finished
            try:
                with session.begin_nested():
                    _execute(rt, session, deletion)
                deletion.status, deletion.error = "done", None
            except (Unavailable, ProtocolError) as failure:  # no answer: it may or may not be done
                deletion.tries += 1
                if deletion.tries < MAX_TRIES:
                    deletion.error = str(failure)
                    deletion.due_at = func.now() + timedelta(seconds=BACKOFF[min(deletion.tries, len(BACKOFF)) - 1])
                    log.warning("deleting %s %s: PurelyMail did not answer (%s); trying again later", deletion.kind,
                                deletion.target, failure)
                    continue
                deletion.status = "failed"
                deletion.error = f"{failure} (PurelyMail did not answer {deletion.tries} tries; gave up)"
            except PurelyMailError as failure:
                deletion.status, deletion.error = "failed", str(failure)
            deletion.finished_at = func.now()
            audit.record(session, actor_id="purelyops", action=f"{deletion.kind}.delete",
                         target=deletion.target, result="ok" if deletion.status == "done" else "failed",
                         detail=deletion.error or "", params={"requested_by": deletion.requested_by})
            session.flush()
            session.refresh(deletion)
            finished.append(deletion)
