"""Domains: add (only once the ownership TXT is visible), check, recheck, list, remove.

The domains table caches PurelyMail's view (listDomains and its dnsSummary) next to our
own last DNS check, so `domain list` never waits on PurelyMail or DNS. Every function
here is what the Slack listeners, the DNS monitor job and the tests call.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import case, delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from db.models import Domain
from db.session import session_scope
from purelyops import audit, deletions, mailboxes
from purelyops.dnscheck import DnsLookupError, DomainCheck, check_domain, expected_records, lookup_txt
from purelyops.domain_names import InvalidDomain, NormalizedDomain, normalize_domain
from purelyops.errors import Refused
from purelyops.purelymail import DomainExistsError, OwnershipNotVerified
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)
OWNERSHIP_KEY = "purelyops:purelymail:ownership-code"
OWNERSHIP_TTL = 24 * 3600
PAGE_SIZE = 20
BADGES = ("mx", "spf", "dkim", "dmarc")


class DomainError(Refused):
    """A domain request that cannot be carried out; the message is for the admin."""


def ownership_code(rt: Runtime) -> str:
    """The account's ownership code (one per account), cached in Redis for a day."""
    cached = rt.redis.get(OWNERSHIP_KEY)
    if cached:
        return cached.decode()
    code = rt.purelymail.get_ownership_code()
    rt.redis.set(OWNERSHIP_KEY, code, ex=OWNERSHIP_TTL)
    return code


def check_json(check: DomainCheck) -> dict[str, Any]:
    return {"records": [dataclasses.asdict(r) for r in check.records], "servers": check.servers,
            "mode": check.mode, "elapsed": round(check.elapsed, 3)}


def badges_of(check: dict[str, Any] | None) -> dict[str, str]:
    """mx/spf/dkim/dmarc → pass/warn/fail from a stored check (DKIM is the worst of three)."""
    if not check:
        return {}
    by_kind = {r["kind"]: r["status"] for r in check["records"]}
    order = {"pass": 0, "warn": 1, "fail": 2}
    dkim = max((by_kind.get(k, "fail") for k in ("dkim1", "dkim2", "dkim3")), key=order.__getitem__)
    return {"mx": by_kind.get("mx", "fail"), "spf": by_kind.get("spf", "fail"), "dkim": dkim,
            "dmarc": by_kind.get("dmarc", "fail")}


def failing_kinds(check: dict[str, Any] | None) -> set[str]:
    return {r["kind"] for r in check["records"] if r["status"] == "fail"} if check else set()


def save_check(session: Session, check: DomainCheck) -> Domain | None:
    """Store a live check on the domain's cache row (if the domain is on the account)."""
    row = session.get(Domain, check.domain)
    if row is not None:
        row.check = check_json(check)
        row.last_checked_at = datetime.now(timezone.utc)
        row.healthy = check.ok
    return row


@dataclass(frozen=True)
class AddOutcome:
    name: NormalizedDomain
    code: str
    added: bool  # False: the ownership TXT is not visible yet, addDomain was not called
    seen_txt: list[str]  # what the apex TXT holds now (when not added)
    lookup_problem: str  # a DNS failure in words (when not added)
    check: DomainCheck | None = None


def domain_name(raw: str) -> NormalizedDomain:
    """The domain an admin typed, or DomainError saying why it is not a domain name."""
    try:
        return normalize_domain(raw)
    except InvalidDomain as error:
        raise DomainError(error.sentence) from None


def add_domain(rt: Runtime, raw: str, *, actor_id: str, actor_name: str = "") -> AddOutcome:
    """Add a domain to PurelyMail, but only once its ownership TXT is visible in DNS.

    Raises DomainError for a bad name, and when PurelyMail says no (audited as failed)."""
    name = domain_name(raw)
    code = ownership_code(rt)
    try:
        seen = lookup_txt(name.ascii, rt.settings.dns_resolver, rt.settings.dns_timeout)
        problem = ""
    except DnsLookupError as error:
        seen, problem = [], error.message
    if code not in seen:
        return AddOutcome(name, code, False, seen, problem)
    refusal = None
    try:
        rt.purelymail.add_domain(name.ascii)
    except DomainExistsError:
        refusal = DomainError(f"{name.ascii} is already on a PurelyMail account (this one or another). "
                              f"See `domain list`, or `domain check {name.ascii}`.")
    except OwnershipNotVerified:
        refusal = DomainError(f"PurelyMail could not see the ownership TXT record on {name.ascii} yet, although "
                              "this bot can. Its resolvers may still cache the old answer: try again in a few minutes.")
    if refusal is not None:
        audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action="domain.add", target=name.ascii,
                         result="failed", detail=str(refusal))
        raise refusal
    check = check_with_code(rt, name.ascii, code)
    with session_scope(rt.database_url) as session:
        session.execute(insert(Domain).values(name=name.ascii, unicode_name=name.unicode)
                        .on_conflict_do_nothing(index_elements=["name"]))
        session.flush()
        save_check(session, check)
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="domain.add", target=name.ascii,
                     params={"unicode": name.unicode})
    return AddOutcome(name, code, True, [], "", check)


def check(rt: Runtime, raw: str) -> DomainCheck:
    """The live DNS check of one domain; the result is kept on its cache row."""
    result = check_with_code(rt, domain_name(raw).ascii, ownership_code(rt))
    with session_scope(rt.database_url) as session:
        save_check(session, result)
    return result


def check_with_code(rt: Runtime, name: str, code: str) -> DomainCheck:
    return check_domain(name, code, resolver_spec=rt.settings.dns_resolver, timeout=rt.settings.dns_timeout)


def sync_from_purelymail(rt: Runtime) -> tuple[list[str], list[str]]:
    """Make the cache match listDomains (one call): new domains in, vanished ones out.
    Returns (added, removed) names."""
    domains = rt.purelymail.list_domains()
    now = datetime.now(timezone.utc)
    names = [d.name.lower() for d in domains]
    with session_scope(rt.database_url) as session:
        before = set(session.scalars(select(Domain.name)))
        for d in domains:
            values = dict(name=d.name.lower(), unicode_name=_unicode(d.name), is_shared=d.is_shared,
                          allow_account_reset=d.allow_account_reset, symbolic_subaddressing=d.symbolic_subaddressing,
                          passes_mx=d.passes_mx, passes_spf=d.passes_spf, passes_dkim=d.passes_dkim,
                          passes_dmarc=d.passes_dmarc, last_seen=now)
            # Until our own check has run, PurelyMail's verdict says whether the domain is healthy.
            session.execute(insert(Domain).values(**values, healthy=d.dns_ok).on_conflict_do_update(
                index_elements=["name"], set_={k: v for k, v in values.items() if k != "name"}))
        session.execute(delete(Domain).where(Domain.name.not_in(names)) if names else delete(Domain))
    return sorted(set(names) - before), sorted(before - set(names))


def _unicode(name: str) -> str:
    try:
        return normalize_domain(name).unicode
    except ValueError:
        return name


def recheck(rt: Runtime, raw: str, *, actor_id: str, actor_name: str = "") -> Domain:
    """Ask PurelyMail to re-run its own DNS checks, then refresh the cache from listDomains."""
    name = domain_name(raw)
    rt.purelymail.update_domain_settings(name.ascii, recheck_dns=True)
    sync_from_purelymail(rt)
    with session_scope(rt.database_url) as session:
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="domain.recheck", target=name.ascii)
        row = session.get(Domain, name.ascii)
        if row is None:
            raise DomainError(f"{name.ascii} is not on the PurelyMail account.")
        return row


@dataclass(frozen=True)
class DomainPage:
    domains: list[Domain]
    total: int
    failing: int
    start: int  # 1-based position of the first row
    next_cursor: str | None  # for the Next button
    prev_cursor: str | None  # for the Previous button


def _rank():
    """0 for failing domains (listed first), 1 for the others."""
    return case((Domain.healthy.is_(False), 0), else_=1)


def cursor_of(row: Domain) -> str:
    return f"{0 if row.healthy is False else 1}:{row.name}"


def _key(cursor: str) -> Any:
    rank, _, name = cursor.partition(":")
    return tuple_(int(rank), name)


def list_page(rt: Runtime, *, after: str | None = None, before: str | None = None,
              page_size: int = PAGE_SIZE) -> DomainPage:
    """One page of the cache, failing domains first, then by name: keyset paging, where
    `after`/`before` are cursors of the row the page starts after or ends before. An
    empty cache is filled from listDomains first."""
    with session_scope(rt.database_url) as session:
        empty = session.scalar(select(func.count()).select_from(Domain)) == 0
    if empty:
        sync_from_purelymail(rt)
    with session_scope(rt.database_url) as session:
        key = tuple_(_rank(), Domain.name)
        if before:
            rows = list(session.scalars(select(Domain).where(key < _key(before))
                                        .order_by(_rank().desc(), Domain.name.desc()).limit(page_size)))[::-1]
        else:
            query = select(Domain).order_by(_rank(), Domain.name).limit(page_size)
            rows = list(session.scalars(query.where(key > _key(after)) if after else query))
        count = select(func.count()).select_from(Domain)
        total = session.scalar(count)
        failing = session.scalar(count.where(Domain.healthy.is_(False)))
        start = 1 + (session.scalar(count.where(key < _key(cursor_of(rows[0])))) if rows else 0)
        session.expunge_all()
    end = start + len(rows) - 1
    return DomainPage(rows, total, failing, start,
                cursor_of(rows[-1]) if rows and end < total else None,
                cursor_of(rows[0]) if rows and start > 1 else None)


def schedule_removal(rt: Runtime, raw: str, *, actor_id: str,
                     channel_id: str | None) -> tuple[deletions.Scheduled, str]:
    """Schedule the domain's deletion 24 hours ahead; returns it and, in words, how many
    mailboxes go with it (saying so when the mailbox cache may be incomplete)."""
    name = domain_name(raw)
    with session_scope(rt.database_url) as session:
        known = session.get(Domain, name.ascii) is not None
    if not known:
        sync_from_purelymail(rt)
        with session_scope(rt.database_url) as session:
            known = session.get(Domain, name.ascii) is not None
    if not known:
        raise DomainError(f"{name.ascii} is not on the PurelyMail account, so there is nothing to remove.")
    detail = mailboxes.going_with(mailboxes.count_on_domain(rt, name.ascii), mailboxes.cache_health(rt))
    return deletions.schedule(rt, kind="domain", target=name.ascii, actor_id=actor_id, detail=detail,
                              channel_id=channel_id), detail


def publish_instructions(name: str, code: str) -> str:
    """The ownership record to publish, as a zone-file line."""
    return next(e.fix for e in expected_records(name, code) if e.kind == "ownership")
