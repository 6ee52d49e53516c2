"""Mailboxes: the mailbox cache, its sync from PurelyMail, and every change an admin makes.

The cache (`mailboxes`) answers `mailbox list` without waiting on PurelyMail. It is filled
by `sync` (one listUser call, then one set-based upsert and one delete in a single
transaction), and updated at once whenever the bot itself creates or deletes a mailbox.

listUser has no paging and stops at 1,000 addresses, so its answer is not always the
whole account. A sync removes cached mailboxes only when the answer looks whole; when it
does not (see `_distrust`), it still adds what was listed, removes nothing, reports why,
and records that the cache may be incomplete (`cache_health`), so that a count shown
before a deletion can say so.
Passwords pass through here on their way to PurelyMail and back to the one admin who
asked; they are never stored, logged or audited.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from redis.exceptions import LockError
from sqlalchemy import and_, delete, func, literal, select, text, true
from sqlalchemy.dialects.postgresql import insert

from db.models import Domain, Mailbox, SyncState
from db.session import session_scope
from purelyops import audit, deletions
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.errors import Busy, Refused
from purelyops.logs import redact
from purelyops.purelymail import LIST_USER_CAP, NotFound, PurelyMailError, RequestRejected, ResetMethod, UserDetails
from purelyops.runtime import Runtime

SYNC_LOCK = "purelyops:lock:user-sync"
SYNC_STATE = "user_sync"
PAGE_SIZE = 20
PASSWORD_LENGTH = 20
MIN_PASSWORD = 8
MAX_PASSWORD = 256
_LOCAL = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?$")


class MailboxError(Refused):
    """A mailbox request that cannot be carried out; the message is for the admin."""


class SyncBusy(Busy):
    """Another sync is running."""


# ---- validation ---------------------------------------------------------------------------


def check_local_part(raw: str) -> str:
    """The local part, lower-cased, or MailboxError saying what is wrong with it."""
    local = raw.strip().lower()
    if not local:
        raise MailboxError("give the part before the @, like alice")
    if "@" in local:
        raise MailboxError("give only the part before the @; pick the domain separately")
    if len(local) > 64:
        raise MailboxError(f"that is {len(local)} characters long; the part before the @ can have at most 64")
    if ".." in local:
        raise MailboxError("two dots in a row are not allowed")
    if not _LOCAL.match(local):
        raise MailboxError("use letters, digits and . _ + - only, starting and ending with a letter or digit")
    return local


def check_address(raw: str) -> str:
    """A full mailbox address, normalised (IDN domain in punycode), or MailboxError."""
    value = raw.strip()
    if value.count("@") != 1:
        raise MailboxError(f"{value[:80] or 'nothing'} is not an email address; write it like alice@example.com")
    local, domain = value.split("@")
    try:
        return f"{check_local_part(local)}@{normalize_domain(domain).ascii}"
    except InvalidDomain as error:
        raise MailboxError(f"the domain part is wrong: {error.message}") from None


def check_password(password: str) -> str:
    """A typed password PurelyMail will take, or MailboxError saying why not (never echoing it)."""
    if len(password) < MIN_PASSWORD:
        raise MailboxError(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise MailboxError(f"the password can have at most {MAX_PASSWORD} characters")
    if any(ch in password for ch in "\r\n\t\x00"):
        raise MailboxError("the password cannot contain line breaks, tabs or NUL characters")
    return password


def strength_hint(password: str) -> str:
    """A short, honest hint about a typed password (shown only to the admin who typed it)."""
    kinds = sum(any(pred(ch) for ch in password) for pred in (str.islower, str.isupper, str.isdigit,
                                                               lambda c: not c.isalnum()))
    if len(password) >= 16 or (len(password) >= 12 and kinds >= 3):
        return "strong"
    if len(password) >= 10 and kinds >= 2:
        return "fair: longer is better"
    return "weak: use 12 or more characters, or let the bot generate one"


def generate_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(PASSWORD_LENGTH))


# ---- sync ---------------------------------------------------------------------------------


DROP_SHARE = 0.2
DROP_MIN = 10
"""The large-drop rule: an answer that lacks more than DROP_SHARE of the cached mailboxes,
and at least DROP_MIN of them, removes nothing until an admin confirms it (`mailbox sync
confirm`). Mailboxes deleted through the bot leave the cache at once, so a drop this
large means deletions elsewhere in one day, or an answer cut short."""


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    total: int = 0
    capped: bool = False  # listUser returned exactly the cap: the list may be cut short
    error: str = ""
    held_back: int = 0  # cached mailboxes missing from the answer, kept because it was not trusted
    distrust: str = ""  # why the answer was not trusted to remove anything (words), or ""

    @property
    def worth_telling(self) -> bool:
        return bool(self.added or self.removed or self.capped or self.distrust or self.error)


def sync(rt: Runtime, *, cap: int | None = LIST_USER_CAP, confirm_drop: bool = False) -> SyncReport:
    """Refresh the cache from listUser. Never two at once (a Redis lock: SyncBusy). If
    PurelyMail fails, the cache is left as it was and the report carries the reason.

    Cached mailboxes missing from the answer are removed only when the answer looks whole
    (`_distrust`). `confirm_drop` is an admin's word that a large drop, or an empty
    account, is real; a capped answer never removes anything."""
    lock = rt.redis.lock(SYNC_LOCK, timeout=600, blocking=False)
    if not lock.acquire():
        raise SyncBusy("A mailbox sync is already running; its report will follow.")
    try:
        return _sync(rt, cap, confirm_drop)
    finally:
        try:
            lock.release()
        except LockError:
            pass


def _distrust(listed: int, cached: int, missing: int, capped: bool, confirm_drop: bool) -> str:
    """Why an answer of `listed` addresses must not remove the `missing` of `cached`
    mailboxes, in words; "" when it may."""
    if capped:
        return (f"PurelyMail listed exactly {listed:,} addresses, the most it lists at once, so the list may be "
                f"cut short")
    if confirm_drop or missing == 0:
        return ""
    if listed == 0:
        return f"PurelyMail listed no mailboxes at all, while the cache holds {cached:,}"
    if missing >= DROP_MIN and missing > DROP_SHARE * cached:
        return (f"PurelyMail's list lacks {missing:,} of the {cached:,} cached mailboxes at once "
                f"(more than {DROP_SHARE:.0%})")
    return ""


def _sync(rt: Runtime, cap: int | None, confirm_drop: bool) -> SyncReport:
    # The database's clock, read before PurelyMail is asked: every other time in the cache
    # (a mailbox added meanwhile is last_seen = now() of the database) is on the same clock.
    with session_scope(rt.database_url) as session:
        now = session.scalar(select(func.now()))
    report = SyncReport()
    try:
        addresses = sorted({a.lower() for a in rt.purelymail.list_users()})
    except PurelyMailError as error:
        report.error = f"PurelyMail could not list the mailboxes: {error}"
        _remember(rt, now, report)
        return report
    report.total = len(addresses)
    report.capped = cap is not None and len(addresses) >= cap
    with session_scope(rt.database_url) as session:
        cached = session.scalar(select(func.count()).select_from(Mailbox))
        report.added = sorted(session.scalars(text(
            "WITH up AS (INSERT INTO mailboxes (address, local_part, domain, first_seen, last_seen) "
            "SELECT a, split_part(a, '@', 1), split_part(a, '@', 2), :now, :now FROM unnest(CAST(:a AS text[])) AS a "
            "ON CONFLICT (address) DO UPDATE SET last_seen = EXCLUDED.last_seen "
            "RETURNING address, (xmax = 0) AS inserted) "
            "SELECT address FROM up WHERE inserted"
        ), {"a": addresses, "now": now}))
        missing = session.scalar(select(func.count()).select_from(Mailbox).where(Mailbox.last_seen < now))
        report.distrust = _distrust(report.total, cached, missing, report.capped, confirm_drop)
        if report.distrust:
            report.held_back = missing
        else:
            report.removed = sorted(session.scalars(
                delete(Mailbox).where(Mailbox.last_seen < now).returning(Mailbox.address)))
    _remember(rt, now, report)
    return report


def _remember(rt: Runtime, now: datetime, report: SyncReport) -> None:
    previous = last_sync(rt)
    before = dict(previous.data or {}) if previous is not None else {}
    if report.error:  # nothing was learnt: the cache is as complete (or not) as it was
        data = before
    elif report.distrust:
        was_incomplete = before.get("complete") is False and before.get("incomplete_since")
        data = {"total": report.total, "capped": report.capped, "complete": False,
                "incomplete_since": before["incomplete_since"] if was_incomplete else now.isoformat(),
                "why": report.distrust, "held_back": report.held_back}
    else:
        data = {"total": report.total, "capped": report.capped, "complete": True}
    values = {"last_run_at": now, "last_error": report.error or None, "data": data}
    if not report.error:
        values["last_ok_at"] = now
    with session_scope(rt.database_url) as session:
        session.execute(insert(SyncState).values(name=SYNC_STATE, **values)
                        .on_conflict_do_update(index_elements=["name"], set_=values))


def last_sync(rt: Runtime) -> SyncState | None:
    with session_scope(rt.database_url) as session:
        state = session.get(SyncState, SYNC_STATE)
        if state is not None:
            session.expunge(state)
        return state


def never_synced(rt: Runtime) -> bool:
    state = last_sync(rt)
    return state is None or state.last_ok_at is None


@dataclass(frozen=True)
class CacheHealth:
    """How far the mailbox cache can be trusted, from the record of the last syncs.

    `complete`: the last sync that got an answer listed every mailbox and removed what
    was gone. Otherwise `since` is when the cache stopped being known complete and `why`
    says why (never filled: `since` is None and `synced` False)."""

    synced: bool
    complete: bool
    since: datetime | None
    why: str
    last_ok_at: datetime | None
    capped: bool = False  # the last answer was cut at listUser's cap: the cache lacks mailboxes


def cache_health(rt: Runtime) -> CacheHealth:
    state = last_sync(rt)
    if state is None or state.last_ok_at is None:
        return CacheHealth(False, False, None, "the mailbox cache has never been filled from PurelyMail", None)
    data = state.data or {}
    capped = bool(data.get("capped"))
    if data.get("complete") is False:
        since = data.get("incomplete_since")
        return CacheHealth(True, False, datetime.fromisoformat(since) if since else state.last_ok_at,
                           str(data.get("why") or "the last mailbox sync was not trusted to remove anything"),
                           state.last_ok_at, capped)
    if data.get("complete") is None and capped:  # recorded before the flag existed
        return CacheHealth(True, False, state.last_ok_at, "PurelyMail's list may have been cut short",
                           state.last_ok_at, capped)
    return CacheHealth(True, True, None, "", state.last_ok_at)


def _utc(at: datetime) -> str:
    return f"{at.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def going_with(count: int, health: CacheHealth, where: str = "on it") -> str:
    """Words for how many cached mailboxes go with a deletion, never claiming more
    certainty than the cache has: "at least", or since when it may be incomplete."""
    if not health.synced:
        known = f"; the bot knows of {count}" if count else ""
        return (f"How many mailboxes are {where} is not known: the mailbox cache has never been filled from "
                f"PurelyMail{known}. Every mailbox {where} goes with it. `mailbox sync` fills the cache.")
    if health.complete:
        as_of = "as of the last mailbox sync" + (f", {_utc(health.last_ok_at)}" if health.last_ok_at else "")
        if count:
            return f"{count} mailbox(es) {where} go with it ({as_of})."
        return f"No mailboxes are {where} ({as_of})."
    doubt = f"the mailbox cache may be incomplete since {_utc(health.since)}" if health.since else \
        "the mailbox cache may be incomplete"
    if health.capped and count:
        return f"At least {count} mailbox(es) {where} go with it, maybe more: {doubt} ({health.why})."
    if count:
        return (f"{count} mailbox(es) {where} go with it by the mailbox cache, but {doubt} ({health.why}): "
                f"every mailbox {where} goes with it, however many there are.")
    return (f"The mailbox cache knows of no mailbox {where}, but {doubt} ({health.why}): "
            f"any mailbox {where} goes with it.")


def count_on_domain(rt: Runtime, domain: str) -> int:
    """How many cached mailboxes are on a domain (see `cache_health` for how far to trust it)."""
    with session_scope(rt.database_url) as session:
        return session.scalar(select(func.count()).select_from(Mailbox).where(Mailbox.domain == domain)) or 0


# ---- list ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailboxPage:
    addresses: list[str]
    matched: int
    total: int
    start: int
    next_cursor: str | None
    prev_cursor: str | None
    last_ok_at: datetime | None


def parse_query(words: list[str]) -> tuple[str, str | None]:
    """`mailbox list` words → (search text, domain filter)."""
    domain = None
    terms = []
    for word in words:
        if word.lower().startswith("domain:"):
            try:
                domain = normalize_domain(word.split(":", 1)[1]).ascii
            except InvalidDomain as error:
                raise MailboxError(f"the domain filter is wrong: {error.message}") from None
        else:
            terms.append(word)
    text_ = " ".join(terms).strip().lower()
    if len(text_) > 320:
        raise MailboxError("the search text can have at most 320 characters")
    return text_, domain


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_page(rt: Runtime, search: str = "", domain: str | None = None, *, after: str | None = None,
              before: str | None = None, page_size: int = PAGE_SIZE) -> MailboxPage:
    """One page of matching cached mailboxes by address, with keyset paging.

    Two queries: the page (walking the address index from the cursor), then one scan
    that counts the matches, the whole cache and the matches before the page at once.
    Addresses are cached lower-case, so the search is a LIKE on the lower-cased text:
    ILIKE folds the case of every row it reads, which made it ~4x slower."""
    conditions = []
    if search:
        conditions.append(Mailbox.address.like(f"%{_escape_like(search.lower())}%", escape="\\"))
    if domain:
        conditions.append(Mailbox.domain == domain)
    match = and_(true(), *conditions)
    with session_scope(rt.database_url) as session:
        if before is not None:
            rows = list(session.scalars(select(Mailbox.address).where(match, Mailbox.address < before)
                                        .order_by(Mailbox.address.desc()).limit(page_size)))[::-1]
        else:
            query = select(Mailbox.address).where(match).order_by(Mailbox.address).limit(page_size)
            rows = list(session.scalars(query.where(Mailbox.address > after) if after is not None else query))
        total, matched, earlier = session.execute(select(
            func.count(), func.count().filter(match),
            func.count().filter(match, Mailbox.address < rows[0]) if rows else literal(0),
        ).select_from(Mailbox)).one()
        state = session.get(SyncState, SYNC_STATE)
        last_ok_at = state.last_ok_at if state else None
    start = 1 + earlier
    end = start + len(rows) - 1
    return MailboxPage(rows, matched, total, start, rows[-1] if rows and end < matched else None,
                       rows[0] if rows and start > 1 else None, last_ok_at)


def cached_domains(rt: Runtime) -> list[str]:
    with session_scope(rt.database_url) as session:
        return list(session.scalars(select(Domain.name).where(Domain.is_shared.is_(False)).order_by(Domain.name)))


# ---- changes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewMailbox:
    local_part: str
    domain: str
    password: str | None  # None: generate one
    enable_password_reset: bool = False
    enable_search_indexing: bool = True
    send_welcome_email: bool = False

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


def create_user(rt: Runtime, new: NewMailbox, *, actor_id: str, actor_name: str = "") -> str:
    """Create the mailbox; returns its password (the typed one, or a generated one), to be
    shown once to the admin who asked. The cache row appears at once."""
    password = new.password if new.password is not None else generate_password()
    redact(password)
    try:
        rt.purelymail.create_user(new.local_part, new.domain, password,
                                  enable_password_reset=new.enable_password_reset,
                                  enable_search_indexing=new.enable_search_indexing,
                                  send_welcome_email=new.send_welcome_email)
    except RequestRejected as error:
        raise MailboxError(f"PurelyMail did not create {new.address}: {error}") from None
    with session_scope(rt.database_url) as session:
        session.execute(insert(Mailbox).values(address=new.address, local_part=new.local_part, domain=new.domain)
                        .on_conflict_do_nothing(index_elements=["address"]))
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="user.create", target=new.address,
                     params={"password": "generated" if new.password is None else "typed",
                             "password_reset": new.enable_password_reset,
                             "search_indexing": new.enable_search_indexing,
                             "welcome_email": new.send_welcome_email})
    return password


def show_user(rt: Runtime, address: str) -> UserDetails:
    """The mailbox's settings from PurelyMail (kept on its cache row), or MailboxError when
    there is no such mailbox."""
    try:
        details = rt.purelymail.get_user(address)
    except NotFound:
        raise MailboxError(f"There is no mailbox {address} on the PurelyMail account.") from None
    with session_scope(rt.database_url) as session:
        row = session.get(Mailbox, address)
        if row is not None:
            row.details = {"search": details.enable_search_indexing,
                           "two_factor": details.require_two_factor_authentication,
                           "recovery": details.recovery_enabled}
            row.details_at = func.now()
    return details


def reset_password(rt: Runtime, address: str, password: str | None, *, actor_id: str, actor_name: str = "") -> str:
    """Set a new password (typed or generated) with modifyUser `newPassword`; returns it."""
    new = password if password is not None else generate_password()
    redact(new)
    rt.purelymail.modify_user(address, new_password=new)
    audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action="user.password.reset", target=address,
                     params={"password": "generated" if password is None else "typed"})
    return new


FLAGS = {"two_factor": "two-factor authentication", "search": "search indexing"}


def set_flag(rt: Runtime, address: str, flag: str, on: bool, *, actor_id: str, actor_name: str = "") -> UserDetails:
    """Two-factor ("two_factor") or search indexing ("search") on or off; the settings after."""
    try:
        if flag == "two_factor":
            rt.purelymail.modify_user(address, require_two_factor_authentication=on)
        elif flag == "search":
            rt.purelymail.modify_user(address, enable_search_indexing=on)
        else:
            raise ValueError(flag)
    except RequestRejected as error:
        raise MailboxError(f"PurelyMail refused to turn {FLAGS[flag]} {'on' if on else 'off'} for {address}: "
                        f"{error}") from None
    audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action=f"user.{flag}", target=address,
                     params={"on": on})
    return show_user(rt, address)


def recovery_methods(rt: Runtime, address: str) -> list[ResetMethod]:
    """The password-reset (recovery) methods of a mailbox."""
    return rt.purelymail.list_password_reset(address)


def add_recovery(rt: Runtime, address: str, kind: Literal["email", "phone"], target: str, description: str | None,
                 *, actor_id: str, actor_name: str = "") -> list[ResetMethod]:
    """Add a recovery method, or update the one that sends to `target`; the methods after."""
    rt.purelymail.upsert_password_reset(address, kind, target, description=description)
    audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action="user.recovery.upsert", target=address,
                     params={"type": kind})
    return recovery_methods(rt, address)


def remove_recovery(rt: Runtime, address: str, target: str, *, actor_id: str,
                    actor_name: str = "") -> list[ResetMethod]:
    """Remove the recovery method that sends to `target`; the methods after."""
    rt.purelymail.delete_password_reset(address, target)
    audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action="user.recovery.delete", target=address)
    return recovery_methods(rt, address)


def schedule_delete(rt: Runtime, address: str, *, actor_id: str, channel_id: str | None) -> deletions.Scheduled:
    return deletions.schedule(rt, kind="user", target=address, actor_id=actor_id, channel_id=channel_id)
