"""Job: watch every domain's DNS and tell ALERT_CHANNEL when a record breaks or recovers.

Each run refreshes the domains cache from listDomains (picking up domains added or
removed outside the bot), then checks at most DNS_MONITOR_BATCH domains, by tier:
never checked first, then failing ones not checked for DNS_RECHECK_FAILING_MINUTES,
then healthy ones not checked for DNS_RECHECK_HEALTHY_HOURS. PurelyMail sees one
listDomains call per run (the ownership code is cached). A domain's first check only
sets its baseline; after that, one message per change, none while the state holds.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import and_, or_, select

from bot.blocks.domains import alert_blocks
from db.models import Domain
from db.session import session_scope
from purelyops import domains
from purelyops.dnscheck import DomainCheck
from purelyops.failures import failure_reason
from purelyops.runtime import Runtime
from workers.queues import job_runtime

log = logging.getLogger(__name__)
PARALLEL_DOMAINS = 4


@dataclass(frozen=True)
class Change:
    domain: str
    broken: list[str]
    recovered: list[str]


def run_dns_monitor() -> int:
    rt = job_runtime()
    return len(monitor(rt))


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


def monitor(rt: Runtime, now: datetime | None = None) -> list[Change]:
    now = now or datetime.now(timezone.utc)
    domains.sync_from_purelymail(rt)
    names = due_domains(rt, now)
    if not names:
        return []
    code = domains.ownership_code(rt)
    with ThreadPoolExecutor(PARALLEL_DOMAINS, thread_name_prefix="dns-monitor") as pool:
        checks = list(pool.map(lambda name: domains.check_with_code(rt, name, code), names))
    changes = [change for check in checks if (change := _record(rt, check, now))]
    for change, check in ((c, next(k for k in checks if k.domain == c.domain)) for c in changes):
        _announce(rt, change, check)
    return changes


def _record(rt: Runtime, check: DomainCheck, now: datetime) -> Change | None:
    """Store the check; compare its failing records with those last announced."""
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
    return Change(check.domain, broken, recovered) if broken or recovered else None


def _announce(rt: Runtime, change: Change, check: DomainCheck) -> None:
    broken = [r for r in check.records if r.kind in change.broken]
    text, blocks = alert_blocks(change.domain, broken, change.recovered)
    try:
        rt.slack.chat_postMessage(channel=rt.settings.alert_channel, text=text, blocks=blocks)
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not announce the DNS change of %s: %s", change.domain, failure_reason(error))
