"""Watching every domain's DNS: which domains are due, their checks, and what changed.

Each watch refreshes the domains cache from listDomains (picking up domains added or
removed outside the bot), then checks at most DNS_MONITOR_BATCH domains, by tier: never
checked first, then failing ones not checked for DNS_RECHECK_FAILING_MINUTES, then
healthy ones not checked for DNS_RECHECK_HEALTHY_HOURS. PurelyMail sees one listDomains
call per watch (the ownership code is cached). A domain's first check only sets its
baseline; after that, each change of its failing records is one `Change`, none while
the state holds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, or_, select

from db.models import Domain
from db.session import session_scope
from purelyops import domains, metrics
from purelyops.dnscheck import DomainCheck, RecordResult
from purelyops.runtime import Runtime

PARALLEL_DOMAINS = 4


@dataclass(frozen=True)
class Change:
    """Records of one domain that broke or recovered since the last change was told."""

    domain: str
    broken: list[str]  # record kinds now failing
    recovered: list[str]  # record kinds passing again
    check: DomainCheck = field(compare=False, repr=False)

    @property
    def broken_records(self) -> list[RecordResult]:
        return [r for r in self.check.records if r.kind in self.broken]


def due_domains(rt: Runtime, now: datetime) -> list[str]:
    s = rt.settings
    failing_before = now - timedelta(minutes=s.dns_recheck_failing_minutes)
    healthy_before = now - timedelta(hours=s.dns_recheck_healthy_hours)
    with session_scope(rt.database_url) as session:
        return list(session.scalars(
            select(Domain.name)
            .where(Domain.is_shared.is_(False), or_(
                Domain.last_checked_at.is_(None),
                and_(Domain.healthy.is_(False), Domain.last_checked_at < failing_before),
                Domain.last_checked_at < healthy_before,
            ))
            .order_by(Domain.last_checked_at.is_not(None), Domain.healthy.is_not(False), Domain.last_checked_at)
            .limit(s.dns_monitor_batch)
        ))


def watch(rt: Runtime, now: datetime | None = None) -> list[Change]:
    """Check the domains that are due and store the results; the changes to tell."""
    now = now or datetime.now(timezone.utc)
    domains.sync_from_purelymail(rt)
    names = due_domains(rt, now)
    if not names:
        return []
    code = domains.ownership_code(rt)
    with ThreadPoolExecutor(PARALLEL_DOMAINS, thread_name_prefix="dns-monitor") as pool:
        checks = list(pool.map(lambda name: domains.check_with_code(rt, name, code), names))
    for check in checks:
        metrics.DNS_CHECKS.labels("ok" if check.ok else "failing").inc()
    changes = [change for check in checks if (change := _record(rt, check, now))]
    for change in changes:
        metrics.DNS_CHANGES.labels("broken").inc(len(change.broken))
        metrics.DNS_CHANGES.labels("recovered").inc(len(change.recovered))
    return changes


def _record(rt: Runtime, check: DomainCheck, now: datetime) -> Change | None:
    """Store the check; compare its failing records with those last told."""
    failing = sorted(r.kind for r in check.records if r.status == "fail")
    with session_scope(rt.database_url) as session:
        row = domains.save_check(session, check)
        if row is None:  # removed meanwhile
            return None
        row.last_checked_at = now
        before = row.alert_state
        row.alert_state = failing
    if before is None:
        return None  # the first watch only sets the baseline
    broken = [k for k in failing if k not in before]
    recovered = [k for k in before if k not in failing]
    return Change(check.domain, broken, recovered, check) if broken or recovered else None
