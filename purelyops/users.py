"""Mailboxes: the users cache, its sync from PurelyMail, and every change an admin makes.

The cache (`mailboxes`) answers `user list` without waiting on PurelyMail. It is filled
by `sync` (one listUser call, then one set-based upsert and one delete in a single
transaction), and updated at once whenever the bot itself creates or deletes a mailbox.
Passwords pass through here on their way to PurelyMail and back to the one admin who
asked; they are never stored, logged or audited.
"""

from __future__ import annotations

import re
import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone

from redis.exceptions import LockError
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert

from db.models import Domain, Mailbox, SyncState
from db.session import session_scope
from purelyops import audit, deletions
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.logs import redact
from purelyops.purelymail import LIST_USER_CAP, PurelyMailError, UserDetails
from purelyops.runtime import Runtime

SYNC_LOCK = "purelyops:lock:user-sync"
SYNC_STATE = "user_sync"
PAGE_SIZE = 20
PASSWORD_LENGTH = 20
MIN_PASSWORD = 8
MAX_PASSWORD = 256
_LOCAL = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?$")


class UserError(Exception):
    """A mailbox request that cannot be carried out; the message is for the admin."""


class SyncBusy(UserError):
    """Another sync is running."""


# ---- validation ---------------------------------------------------------------------------


def check_local_part(raw: str) -> str:
    """The local part, lower-cased, or UserError saying what is wrong with it."""
    local = raw.strip().lower()
    if not local:
        raise UserError("give the part before the @, like alice")
    if "@" in local:
        raise UserError("give only the part before the @; pick the domain separately")
    if len(local) > 64:
        raise UserError(f"that is {len(local)} characters long; the part before the @ can have at most 64")
    if ".." in local:
        raise UserError("two dots in a row are not allowed")
    if not _LOCAL.match(local):
        raise UserError("use letters, digits and . _ + - only, starting and ending with a letter or digit")
    return local


def check_address(raw: str) -> str:
    """A full mailbox address, normalised (IDN domain in punycode), or UserError."""
    value = raw.strip()
    if value.count("@") != 1:
        raise UserError(f"{value[:80] or 'nothing'} is not an email address; write it like alice@example.com")
    local, domain = value.split("@")
    try:
        return f"{check_local_part(local)}@{normalize_domain(domain).ascii}"
    except InvalidDomain as error:
        raise UserError(f"the domain part is wrong: {error.message}") from None


def check_password(password: str) -> str:
    """A typed password PurelyMail will take, or UserError saying why not (never echoing it)."""
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"the password can have at most {MAX_PASSWORD} characters")
    if any(ch in password for ch in "\r\n\t\x00"):
        raise UserError("the password cannot contain line breaks, tabs or NUL characters")
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


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    total: int = 0
    capped: bool = False  # listUser returned exactly the cap: the list may be cut short
    error: str = ""

    @property
    def worth_telling(self) -> bool:
        return bool(self.added or self.removed or self.capped or self.error)


def sync(rt: Runtime, *, cap: int | None = LIST_USER_CAP) -> SyncReport:
    """Refresh the cache from listUser. Never two at once (a Redis lock: SyncBusy). If
    PurelyMail fails, the cache is left as it was and the report carries the reason."""
    lock = rt.redis.lock(SYNC_LOCK, timeout=600, blocking=False)
    if not lock.acquire():
        raise SyncBusy("A user sync is already running; its report will follow.")
    try:
        return _sync(rt, cap)
    finally:
        try:
            lock.release()
        except LockError:
            pass


def _sync(rt: Runtime, cap: int | None) -> SyncReport:
    now = datetime.now(timezone.utc)
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
        report.added = sorted(session.scalars(text(
            "WITH up AS (INSERT INTO mailboxes (address, local_part, domain, first_seen, last_seen) "
            "SELECT a, split_part(a, '@', 1), split_part(a, '@', 2), :now, :now FROM unnest(CAST(:a AS text[])) AS a "
            "ON CONFLICT (address) DO UPDATE SET last_seen = EXCLUDED.last_seen "
            "RETURNING address, (xmax = 0) AS inserted) "
            "SELECT address FROM up WHERE inserted"
        ), {"a": addresses, "now": now}))
        report.removed = sorted(session.scalars(
            delete(Mailbox).where(Mailbox.last_seen < now).returning(Mailbox.address)))
    _remember(rt, now, report)
    return report


def _remember(rt: Runtime, now: datetime, report: SyncReport) -> None:
    values = {"last_run_at": now, "last_error": report.error or None,
              "data": {"total": report.total, "capped": report.capped}}
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
    """`user list` words → (search text, domain filter)."""
    domain = None
    terms = []
    for word in words:
        if word.lower().startswith("domain:"):
            try:
                domain = normalize_domain(word.split(":", 1)[1]).ascii
            except InvalidDomain as error:
                raise UserError(f"the domain filter is wrong: {error.message}") from None
        else:
            terms.append(word)
    text_ = " ".join(terms).strip().lower()
    if len(text_) > 320:
        raise UserError("the search text can have at most 320 characters")
    return text_, domain


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_page(rt: Runtime, search: str = "", domain: str | None = None, *, after: str | None = None,
              before: str | None = None, page_size: int = PAGE_SIZE) -> MailboxPage:
    """One page of matching cached mailboxes by address, with keyset paging."""
    conditions = []
    if search:
        conditions.append(Mailbox.address.ilike(f"%{_escape_like(search)}%", escape="\\"))
    if domain:
        conditions.append(Mailbox.domain == domain)
    with session_scope(rt.database_url) as session:
        if before is not None:
            rows = list(session.scalars(select(Mailbox.address).where(*conditions, Mailbox.address < before)
                                        .order_by(Mailbox.address.desc()).limit(page_size)))[::-1]
        else:
            query = select(Mailbox.address).where(*conditions).order_by(Mailbox.address).limit(page_size)
            rows = list(session.scalars(query.where(Mailbox.address > after) if after is not None else query))
        matched = session.scalar(select(func.count()).select_from(Mailbox).where(*conditions))
        total = session.scalar(select(func.count()).select_from(Mailbox)) if conditions else matched
        start = 1 + (session.scalar(select(func.count()).select_from(Mailbox)
                                    .where(*conditions, Mailbox.address < rows[0])) if rows else 0)
    state = last_sync(rt)
    end = start + len(rows) - 1
    return MailboxPage(rows, matched, total, start, rows[-1] if rows and end < matched else None,
                rows[0] if rows and start > 1 else None, state.last_ok_at if state else None)


def cached_domains(rt: Runtime) -> list[str]:
    with session_scope(rt.database_url) as session:
        return list(session.scalars(select(Domain.name).where(Domain.is_shared.is_(False)).order_by(Domain.name)))


# ---- changes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewUser:
    local_part: str
    domain: str
    password: str | None  # None: generate one
    enable_password_reset: bool = False
    enable_search_indexing: bool = True
    send_welcome_email: bool = False

    @property
    def address(self) -> str:
        return f"{self.local_part}@{self.domain}"


def create_user(rt: Runtime, new: NewUser, *, actor_id: str, actor_name: str = "") -> str:
    """Create the mailbox; returns its password (the typed one, or a generated one), to be
    shown once to the admin who asked. The cache row appears at once."""
    password = new.password if new.password is not None else generate_password()
    redact(password)
    rt.purelymail.create_user(new.local_part, new.domain, password,
                              enable_password_reset=new.enable_password_reset,
                              enable_search_indexing=new.enable_search_indexing,
                              send_welcome_email=new.send_welcome_email)
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
    details = rt.purelymail.get_user(address)
    with session_scope(rt.database_url) as session:
        row = session.get(Mailbox, address)
        if row is not None:
            row.details = {"search": details.enable_search_indexing, "two_factor": details.require_two_factor_authentication,
                           "recovery": details.recovery_enabled}
            row.details_at = datetime.now(timezone.utc)
    return details


def reset_password(rt: Runtime, address: str, password: str | None, *, actor_id: str, actor_name: str = "") -> str:
    """Set a new password (typed or generated) with modifyUser `newPassword`; returns it."""
    new = password if password is not None else generate_password()
    redact(new)
    rt.purelymail.modify_user(address, new_password=new)
    audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action="user.password.reset", target=address,
                     params={"password": "generated" if password is None else "typed"})
    return new


def set_flag(rt: Runtime, address: str, flag: str, on: bool, *, actor_id: str, actor_name: str = "") -> None:
    """Two-factor ("two_factor") or search indexing ("search") on or off."""
    if flag == "two_factor":
        rt.purelymail.modify_user(address, require_two_factor_authentication=on)
    elif flag == "search":
        rt.purelymail.modify_user(address, enable_search_indexing=on)
    else:
        raise ValueError(flag)
    audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action=f"user.{flag}", target=address,
                     params={"on": on})


def schedule_delete(rt: Runtime, address: str, *, actor_id: str, channel_id: str | None) -> deletions.Scheduled:
    return deletions.schedule(rt, kind="user", target=address, actor_id=actor_id, channel_id=channel_id)
