"""The App Home dashboard's figures, all from PostgreSQL: opening Home never waits on PurelyMail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select

from db.models import Domain, Mailbox, MigrationJob, PendingDeletion, SyncState
from db.session import session_scope
from purelyops.credit import STATE as CREDIT_STATE
from purelyops.mailboxes import SYNC_STATE
from purelyops.runtime import Runtime


@dataclass(frozen=True)
class Dashboard:
    mailboxes_per_domain: list[tuple[str, int]]
    mailboxes: int
    domains: int
    healthy_domains: int
    credit: Decimal | None  # as of the last daily check
    credit_low: bool
    migrations_running: int
    migrations_queued: int
    pending_deletions: int
    last_sync: datetime | None
    migrations_incomplete: int = 0  # ended with messages missing at the destination (the check)


def dashboard(rt: Runtime) -> Dashboard:
    with session_scope(rt.database_url) as session:
        per_domain = [(d, n) for d, n in session.execute(
            select(Mailbox.domain, func.count()).group_by(Mailbox.domain).order_by(
                func.count().desc(), Mailbox.domain))]
        domains = session.scalar(select(func.count()).select_from(Domain).where(Domain.is_shared.is_(False)))
        healthy = session.scalar(select(func.count()).select_from(Domain)
                                 .where(Domain.is_shared.is_(False), Domain.healthy.is_(True)))
        pending = session.scalar(select(func.count()).select_from(PendingDeletion)
                                 .where(PendingDeletion.status == "pending"))
        credit_state = session.get(SyncState, CREDIT_STATE)
        sync_state = session.get(SyncState, SYNC_STATE)
        counts = dict(session.execute(select(MigrationJob.status, func.count())
                                      .where(MigrationJob.status.in_(("running", "queued", "incomplete")))
                                      .group_by(MigrationJob.status)).all())
        running, queued, incomplete = (counts.get(s, 0) for s in ("running", "queued", "incomplete"))
        credit = Decimal(credit_state.data["credit"]) if credit_state and "credit" in credit_state.data else None
        return Dashboard(per_domain, sum(n for _, n in per_domain), domains, healthy, credit,
                         bool(credit_state and credit_state.data.get("low")), running, queued, pending,
                         sync_state.last_ok_at if sync_state else None, incomplete)
