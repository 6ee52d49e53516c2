"""Credential links: mailbox owners give the login of their old mailbox through a public
web form, never through Slack.

An admin creates a link (`create_link`) for one source server and names the destination
domain(s): where the mail goes is the admin's choice, never the form's. Each person opens
PUBLIC_URL/gather/<token> and types their old address and password, and maybe a new
address (at one of the link's domains, or refused) and the new mailbox's password. `submit`
tries a real IMAP login on the link's source server first (`purelyops.servers`: the host
checked by resolve_source, TLS verified), and a given new password at PURELYMAIL_IMAP_HOST,
and stores nothing unless both work. Then the passwords are encrypted with CREDENTIALS_KEY
(purelyops.crypto, bound to the row, like migration credentials). The admin turns the
submissions into one batch of migrations (`create_jobs`), a page of PAGE rows at a time,
each listed first; a mailbox that already exists is copied into only with its password
proven at submit (`dest_proven`) or with the admin's approval of that row. A submission's
ciphertext is deleted as soon as its job holds its own copy, and a closed or expired
link's unused credentials CREDENTIAL_RETENTION_DAYS after it ended
(`purge_unused_credentials`).

The token (at least 32 URL-safe characters from `secrets`) is a secret like a password:
the database keeps its SHA-256, to find the link, and an encrypted copy, to show the link
again to an admin; it is never logged, and never posted where a channel can read it.
Failed logins are counted in Redis, so that every web process shares one limit: more than
FAIL_LIMIT failures for one address, or from one IP address (an IPv6 /64), within
FAIL_WINDOW_S answer "too many attempts". A login that was sent and never answered (a
timeout, a dropped connection: servers delay wrong passwords) is a failure too. At most
CHECK_SLOTS logins are tried at once across every web process (slots in Redis that expire
by themselves); beyond, "busy", which is not counted. Both keep time by Redis' clock, never
a web process's.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import StrEnum

from redis.exceptions import LockError
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.models import GatherLink, GatherSubmission, Mailbox, MigrationJob, SourceServer
from db.session import session_scope
from purelyops import audit, crypto, mailboxes, migrations, servers, slots
from purelyops.domain_names import InvalidDomain, normalize_domain
from purelyops.errors import Refused
from purelyops.fields import FieldProblems
from purelyops.logs import redact
from purelyops.purelymail import NotFound, PurelyMailError, RequestRejected
from purelyops.runtime import Runtime

_log = logging.getLogger(__name__)

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
EXPIRY_DAYS = (3, 7, 14, 30)
DEFAULT_EXPIRY_DAYS = 7
MAX_NAME = 80
MAX_DOMAINS = 10
FAIL_LIMIT = 5
FAIL_WINDOW_S = 15 * 60
CHECK_SLOTS = 4  # login checks (IMAP) at once, across every web process
CHECK_SLOTS_KEY = "purelyops:gather:login-checks"
LOGIN_CHECK_TIMEOUT = servers.LOGIN_TIMEOUT  # seconds one login check may wait for its answer
PUBLIC_ACTOR = "web form"  # the audit log's actor for what people do on the public form
EXISTENCE_CHECKS = 8  # getUser calls at most per `gather show` (PurelyMail answers about one a second)

# The public form's fields, with their limits (the page's maxlength says the same).
LIMITS = {"full_name": 200, "email": 320, "password": migrations.MAX_PASSWORD, "new_address": 320,
          "new_password": migrations.MAX_PASSWORD}
# The old address as the person typed it is what IMAP logs in with: only an unquoted
# local part (RFC 5322 atext, dots between) is taken, so that what keys the attempt limit
# and the duplicate check is exactly what the server reads (no quotes, backslashes or spaces
# that IMAP would unquote into the same login).
_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class GatherError(Refused):
    """A request about a credential link that cannot be carried out; the message is for the admin."""


class LinkState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    CLOSED = "closed"


def state_of(link: GatherLink, now: datetime | None = None) -> LinkState:
    if link.closed_at is not None:
        return LinkState.CLOSED
    if link.expires_at <= (now or datetime.now(timezone.utc)):
        return LinkState.EXPIRED
    return LinkState.ACTIVE


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token_aad(link_id: int) -> str:
    return f"gather-link:{link_id}"


def _submission_aad(submission_id: int) -> str:
    return f"gather-submission:{submission_id}"


def link_url(rt: Runtime, token: str) -> str:
    """Where people open the form. Requires PUBLIC_URL (GatherError without it)."""
    if not rt.settings.public_url:
        raise GatherError(no_public_url())
    return f"{rt.settings.public_url}/gather/{token}"


def no_public_url() -> str:
    return ("Credential links need PUBLIC_URL: the base URL at which people reach this bot's web process "
            "(the one that listens on PORT), behind your TLS proxy, like https://purelyops.example.com. "
            "Set it in the environment or .env and restart purelyops; the form is then served at "
            "PUBLIC_URL/gather/…, in HTTP and in Socket Mode.")


# ---- the admin's side ---------------------------------------------------------------------------


def check_name(raw: str) -> str:
    name = raw.strip()
    if len(name) > MAX_NAME or _CONTROL.search(name):
        raise FieldProblems({"name": f"a short name on one line, at most {MAX_NAME} characters"})
    return name


def check_domains(raw: list[str] | str) -> list[str]:
    """The destination domains an admin chose (a list, or text with commas or spaces
    between them), normalised, in their order, each once; FieldProblems on "domains"."""
    items = raw.replace(",", " ").split() if isinstance(raw, str) else [str(item) for item in raw]
    found: list[str] = []
    for item in items:
        try:
            domain = normalize_domain(item).ascii
        except InvalidDomain as error:
            raise FieldProblems({"domains": error.message}) from None
        if domain not in found:
            found.append(domain)
    if not found:
        raise FieldProblems({"domains": "name the domain(s) the mail goes to, like example.com"})
    if len(found) > MAX_DOMAINS:
        raise FieldProblems({"domains": f"at most {MAX_DOMAINS} domains a link"})
    return found


def link_domains(link: GatherLink) -> list[str]:
    """The link's destination domains, the first one for people who give no new address."""
    return [domain for domain in (link.dest_domains or "").split(",") if domain]


def create_link(rt: Runtime, server_id: int, days: int, name: str, *, actor_id: str, actor_name: str,
                channel_id: str, idempotency_key: str, dest_domains: list[str]) -> tuple[GatherLink, str, bool]:
    """A new link open for `days`, whose mail goes to `dest_domains` (the first one for a
    person who gives no new address): (the link, its token, True); the same idempotency key
    again gives the first link, its token and False (a double-submitted form makes one)."""
    dest_domains = check_domains(dest_domains)
    if days not in EXPIRY_DAYS:
        raise GatherError(f"a link is open for {', '.join(map(str, EXPIRY_DAYS))} days")
    if not rt.settings.public_url:
        raise GatherError(no_public_url())
    with session_scope(rt.database_url) as session:
        existing = session.scalars(select(GatherLink).where(GatherLink.idempotency_key == idempotency_key)).first()
        if existing is not None:
            session.expunge(existing)
            return existing, reveal_token(rt, existing), False
        server = session.get(SourceServer, server_id)
        if server is None:
            raise GatherError("That source server was removed meanwhile; choose another.")
        if server.auth != "password":
            raise GatherError(f"{server.name} signs in with an app or a service account: a credential link has "
                              "nothing to gather for it, as nobody's password is needed. Start the migrations "
                              "with `migrate bulk` (it can list the tenant's mailboxes) or `migrate`.")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        link = GatherLink(name=name, token_hash=token_digest(token), token_key_id="", token_ciphertext=b"",
                          source_server_id=server.id, source_name=server.name, source_host=server.host,
                          source_port=server.port, source_security=server.security,
                          dest_domains=",".join(dest_domains), channel_id=channel_id,
                          created_by=actor_id, expires_at=datetime.now(timezone.utc) + timedelta(days=days),
                          idempotency_key=idempotency_key)
        session.add(link)
        session.flush()
        link.token_key_id, link.token_ciphertext = crypto.encrypt(rt.settings.credential_keys, {"token": token},
                                                                  _token_aad(link.id))
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="gather.create",
                     target=f"link {link.id}", params={"name": name, "server": server.name, "days": days,
                                                       "domains": dest_domains})
        session.flush()
        session.expunge(link)
        return link, token, True


def reveal_token(rt: Runtime, link: GatherLink) -> str:
    """The link's token, decrypted (for an admin who asks to see the link again)."""
    try:
        return crypto.decrypt(rt.settings.credential_keys, link.token_key_id, link.token_ciphertext,
                              _token_aad(link.id))["token"]
    except crypto.CredentialsUnreadable:
        raise GatherError(f"The link of credential link {link.id} cannot be decrypted any more (CREDENTIALS_KEY "
                          "changed); close it and create a new one.") from None


def remember_message(rt: Runtime, link_id: int, ts: str) -> None:
    with session_scope(rt.database_url) as session:
        session.execute(update(GatherLink).where(GatherLink.id == link_id).values(message_ts=ts))


def get_link(rt: Runtime, link_id: int) -> GatherLink:
    with session_scope(rt.database_url) as session:
        link = session.get(GatherLink, link_id)
        if link is None:
            raise GatherError(f"There is no credential link {link_id}; see `gather list`.")
        session.expunge(link)
        return link


@dataclass(frozen=True)
class LinkSummary:
    link: GatherLink
    state: LinkState
    submissions: int
    with_jobs: int

    @property
    def waiting(self) -> int:
        """Submissions whose migration job is not created yet."""
        return self.submissions - self.with_jobs


def summaries(rt: Runtime, link_ids: list[int] | None = None, limit: int = 40) -> list[LinkSummary]:
    """Links, newest first, each with its state and counts."""
    with session_scope(rt.database_url) as session:
        query = select(GatherLink).order_by(GatherLink.id.desc()).limit(limit)
        if link_ids is not None:
            query = query.where(GatherLink.id.in_(link_ids))
        links = list(session.scalars(query))
        counts = {row.link_id: (row.total, row.with_jobs) for row in session.execute(
            select(GatherSubmission.link_id, func.count().label("total"),
                   func.count(GatherSubmission.job_id).label("with_jobs"))
            .where(GatherSubmission.link_id.in_([link.id for link in links]))
            .group_by(GatherSubmission.link_id))}
        session.expunge_all()
    now = datetime.now(timezone.utc)
    return [LinkSummary(link, state_of(link, now), *counts.get(link.id, (0, 0))) for link in links]


def summary(rt: Runtime, link_id: int) -> LinkSummary:
    found = summaries(rt, [link_id], limit=1)
    if not found:
        raise GatherError(f"There is no credential link {link_id}; see `gather list`.")
    return found[0]


def close_link(rt: Runtime, link_id: int, *, actor_id: str, actor_name: str = "") -> GatherLink:
    """Close the link at once: its form answers 410 from now on. Once only."""
    with session_scope(rt.database_url) as session:
        link = session.scalars(update(GatherLink).where(GatherLink.id == link_id, GatherLink.closed_at.is_(None))
                               .values(closed_at=func.now(), closed_by=actor_id)
                               .returning(GatherLink)).one_or_none()
        if link is None:
            if session.get(GatherLink, link_id) is None:
                raise GatherError(f"There is no credential link {link_id}; see `gather list`.")
            raise GatherError(f"Credential link {link_id} is already closed.")
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="gather.close",
                     target=f"link {link_id}")
        session.flush()
        session.expunge(link)
        return link


def submissions(rt: Runtime, link_id: int) -> list[GatherSubmission]:
    with session_scope(rt.database_url) as session:
        found = list(session.scalars(select(GatherSubmission).where(GatherSubmission.link_id == link_id)
                                     .order_by(GatherSubmission.id)))
        session.expunge_all()
        return found


def default_destination(submission: GatherSubmission, domain: str | None) -> str | None:
    """Where the submission's mail goes: the new address the person gave, else the same
    local part on `domain`, the link's first domain (None when neither is known).
    MailboxError when that local part cannot be a mailbox name."""
    return destination_of(submission.email, submission.new_address, domain)


def destination_of(email: str, new_address: str | None, domain: str | None) -> str | None:
    if new_address:
        return new_address
    if domain is None:
        return None
    return f"{mailboxes.check_local_part(email.rpartition('@')[0])}@{domain}"


class Existence(StrEnum):
    EXISTS = "exists"
    WILL_BE_CREATED = "will be created"
    UNCHECKED = "not checked"


@dataclass(frozen=True)
class Planned:
    """A submission as `gather show` and Create jobs present it."""

    submission: GatherSubmission
    destination: str | None  # None: no destination can be named (see `problem`), or the job exists
    existence: Existence | None  # None when there is no destination, or the job exists
    problem: str = ""  # why this row cannot become a job, in words

    @property
    def proven(self) -> bool:
        """The person gave the destination's own password, and a login at PurelyMail proved it."""
        return self.destination is not None and self.submission.dest_proven == self.destination

    @property
    def needs_approval(self) -> bool:
        """The destination is a mailbox that exists and whose password was not proven: it
        becomes a job only with the admin's explicit approval of this row."""
        return self.existence is Existence.EXISTS and not self.proven

    @property
    def reason(self) -> str:
        """Why the row needs approval, in words (empty when it does not; at most 75 characters)."""
        if not self.needs_approval:
            return ""
        if self.submission.new_address:
            return "named on the form; it exists, and no password for it was given"
        return "the same name at the link's domain; it exists, no password given"


def plan(rt: Runtime, link_id: int, *, checks: int = EXISTENCE_CHECKS, rows: list[GatherSubmission] | None = None,
         domain: str | None = None) -> list[Planned]:
    """Every submission (or `rows`) with its destination and whether that mailbox exists on
    PurelyMail: "exists" from the mailbox cache, else asked of PurelyMail (getUser, at most
    `checks` calls; a mailbox found is added to the cache). The destination of a person who
    gave no new address is the same name on the link's first domain (or on `domain`, for a
    link made before links named their domains)."""
    link = get_link(rt, link_id)
    domain = (link_domains(link) or [domain])[0]
    rows = submissions(rt, link_id) if rows is None else rows
    targets: dict[int, str | None] = {}
    problems: dict[int, str] = {}
    for row in rows:
        try:
            targets[row.id] = default_destination(row, domain)
        except mailboxes.MailboxError:
            targets[row.id], problems[row.id] = None, ("the part before the @ cannot be a mailbox name; ask for a "
                                                       "new address")
    cached = _cached(rt, {t for t in targets.values() if t})
    out: list[Planned] = []
    for row in rows:
        existence: Existence | None = None
        target = targets[row.id] if row.job_id is None else None
        if target is not None:
            if target in cached:
                existence = Existence.EXISTS
            elif checks > 0:
                checks -= 1
                try:
                    existence = Existence.EXISTS if mailbox_exists(rt, target) else Existence.WILL_BE_CREATED
                except PurelyMailError as error:  # the list still shows; Create jobs asks again
                    _log.warning("getUser for a credential link's destination failed: %s", error)
                    existence, checks = Existence.UNCHECKED, 0
            else:
                existence = Existence.UNCHECKED
        problem = problems.get(row.id, "") if row.job_id is None else ""
        if row.job_id is None and target is None and not problem:
            problem = "no new address, and the link names no destination domain"
        out.append(Planned(row, target, existence, problem))
    return out


def _cached(rt: Runtime, addresses: set[str]) -> set[str]:
    if not addresses:
        return set()
    with session_scope(rt.database_url) as session:
        return set(session.scalars(select(Mailbox.address).where(Mailbox.address.in_(addresses))))


def mailbox_exists(rt: Runtime, address: str) -> bool:
    """Whether PurelyMail has this mailbox (getUser); one it has goes into the mailbox cache."""
    try:
        rt.purelymail.get_user(address)
    except NotFound:
        return False
    local, _, domain = address.partition("@")
    with session_scope(rt.database_url) as session:
        session.execute(insert(Mailbox).values(address=address, local_part=local, domain=domain)
                        .on_conflict_do_nothing(index_elements=["address"]))
    return True


def waiting(rt: Runtime, link_id: int) -> list[GatherSubmission]:
    """Submissions still waiting for their migration job (their credentials are there), oldest first."""
    return [s for s in submissions(rt, link_id) if s.job_id is None and s.ciphertext is not None]


PAGE = 50  # rows one Create jobs shows, and then turns into jobs: every one of them listed first


def next_page(rt: Runtime, link_id: int, *, checks: int = 2) -> tuple[list[Planned], int]:
    """The waiting rows the next Create jobs shows and runs (at most PAGE, oldest first),
    each with its destination and existence, and how many wait in all."""
    pending = waiting(rt, link_id)
    return plan(rt, link_id, checks=checks, rows=pending[:PAGE]), len(pending)


@dataclass(frozen=True)
class JobOptions:
    domain: str | None  # for submissions without a new address, on a link that names no domain
    dry_run: bool = True
    exclude: str | None = None
    max_age_days: int | None = None
    rows: tuple[int, ...] | None = None  # the submissions the admin was shown; None: the next page
    approved: frozenset[int] = frozenset()  # submissions whose existing, unproven destination the admin approved


@dataclass
class JobsOutcome:
    """What `create_jobs` did. `created` holds generated passwords: they go to the one
    admin who asked, once, and nowhere else."""

    batch_id: int | None = None
    jobs: int = 0
    created: list[tuple[str, str]] = field(default_factory=list)  # (address, generated password)
    problems: list[str] = field(default_factory=list)  # per submission, in words
    existing: int = 0


CREATE_LOCK = "purelyops:gather:create-jobs:{}"
CREATE_LOCK_SECONDS = 60  # the lock's lifetime; renewed every third of it for as long as Create jobs runs


class _HeldLock:
    """A Redis lock held for as long as its holder runs: a thread renews it every third of
    its lifetime, so a run of any length keeps it, and a holder that dies (or is killed)
    lets it go within CREATE_LOCK_SECONDS. `lost` is set if it could not be renewed. A
    holder whose whole process stalls (a paused machine) past the lock's life loses it
    without noticing: what must not happen twice is claimed in PostgreSQL as well (`_claim`)."""

    def __init__(self, rt: Runtime, key: str) -> None:
        # not thread-local: the thread that renews it is not the one that took it
        self.lock = rt.redis.lock(key, timeout=CREATE_LOCK_SECONDS, blocking=False, thread_local=False)
        self.lost = threading.Event()
        self._done = threading.Event()

    def acquire(self) -> bool:
        if not self.lock.acquire():
            return False
        threading.Thread(target=self._renew, daemon=True, name="create-jobs-lock").start()
        return True

    def _renew(self) -> None:
        while not self._done.wait(CREATE_LOCK_SECONDS / 3):
            try:
                self.lock.reacquire()
            except Exception as error:  # noqa: BLE001 - Redis away or the lock gone: the run stops
                _log.warning("Create jobs could not keep its lock: %s", error)
                self.lost.set()
                return

    def release(self) -> None:
        self._done.set()
        try:
            self.lock.release()
        except LockError:
            pass


def create_jobs(rt: Runtime, link_id: int, options: JobOptions, *, actor_id: str, actor_name: str, channel_id: str,
                idempotency_key: str) -> JobsOutcome:
    """One migration per waiting submission, as one batch (like `migrate bulk`). Missing
    destination mailboxes are created with generated passwords (in the outcome, for the
    admin). The destination password a person gave is used for a mailbox that already
    existed; otherwise each run makes a temporary app password. A submission whose job is
    made loses its own ciphertext: the job keeps the credentials, under its retention. The
    lock on the link is held as long as this runs (renewed), so two never run at once; and
    the batch claims its submissions in its own transaction, so a run that stalled past its
    lock's life, while another took over, makes no second batch of the same submissions. A
    mailbox created by a run that crashed before its password was shown gets a new password
    here, shown with the others."""
    lock = _HeldLock(rt, CREATE_LOCK.format(link_id))
    if not lock.acquire():
        raise GatherError(f"Jobs are being created for credential link {link_id} right now; their message follows.")
    try:
        return _create_jobs(rt, link_id, options, actor_id, actor_name, channel_id, idempotency_key, lock.lost)
    finally:
        lock.release()


def _create_jobs(rt: Runtime, link_id: int, options: JobOptions, actor_id: str, actor_name: str, channel_id: str,
                 idempotency_key: str, lost: threading.Event) -> JobsOutcome:
    link = get_link(rt, link_id)
    if link.source_server_id is None:
        raise GatherError(f"The source server of credential link {link_id} ({link.source_name}) was removed; "
                          "add it again with `server add` and create a new link.")
    outcome = JobsOutcome()
    pending = waiting(rt, link_id)
    if options.rows is not None:  # exactly the rows the admin was shown (still waiting)
        shown = set(options.rows)
        pending = [row for row in pending if row.id in shown]
    else:
        pending = pending[:PAGE]
    if not pending:
        raise GatherError(f"Credential link {link_id} has no submission waiting for a job.")
    domain = (link_domains(link) or [options.domain])[0]
    specs: list[migrations.JobSpec] = []
    chosen: list[GatherSubmission] = []
    for row in pending:
        try:
            destination = default_destination(row, domain)
        except mailboxes.MailboxError:
            outcome.problems.append(f"{row.email}: the part before the @ cannot be a mailbox name here; ask for "
                                    "a new address")
            continue
        if destination is None:
            outcome.problems.append(f"{row.email} gave no new address, and no destination domain was chosen")
            continue
        proven = row.dest_proven == destination
        # An existing mailbox receives someone else's mail only with its own password, proven
        # when it was submitted, or with the admin's approval of this very row.
        # (a mailbox an earlier Create jobs of this row made, and died before showing, is its own)
        exists = not _ours(row, destination) and (bool(_cached(rt, {destination})) or mailbox_exists(rt, destination))
        if exists and not proven and row.id not in options.approved:
            outcome.problems.append(f"{row.email} → {destination}: that mailbox already exists and its password was "
                                    "not proven; approve the row in Create jobs to copy into it")
            continue
        try:
            secret = crypto.decrypt(rt.settings.credential_keys, row.key_id or "", row.ciphertext or b"",
                                    _submission_aad(row.id))
        except crypto.CredentialsUnreadable as error:
            outcome.problems.append(f"{row.email}: {error}")
            continue
        redact(*secret.values())
        if lost.is_set():
            raise GatherError(f"Creating the jobs of credential link {link_id} stopped: its lock could not be kept "
                              "(is Redis reachable?). Mailboxes already created stay; Create jobs again to go on.")
        existed = _ensure_mailbox(rt, row, destination, outcome, actor_id=actor_id, actor_name=actor_name,
                                  exists=exists)
        if existed is None:
            continue
        if existed and not exists and not proven and row.id not in options.approved:
            # made by someone else between the check and now: not ours to fill without approval
            outcome.existing -= 1
            outcome.problems.append(f"{row.email} → {destination}: that mailbox was created meanwhile by someone "
                                    "else; approve the row in Create jobs to copy into it")
            continue
        dest_password = secret.get("dest", "") if existed and proven else ""
        specs.append(migrations.JobSpec(link.source_server_id, row.email, secret["source"], destination, dest_password,
                                        dry_run=options.dry_run, exclude=options.exclude,
                                        max_age_days=options.max_age_days))
        chosen.append(row)
    if not specs:
        return outcome

    def claim(session: Session, jobs: list[MigrationJob]) -> None:
        """Each row is this batch's only if no batch took it meanwhile: a Create jobs frozen
        past its lock, while another made the batch, makes none (its transaction undone)."""
        if _claim(session, chosen, jobs) < len(jobs):
            raise GatherError(f"The jobs of credential link {link_id} were created meanwhile by another Create "
                              "jobs; nothing more was made.")

    name = (link.name or f"credential link {link.id}")[:MAX_NAME]
    batch, jobs, made = migrations.create_batch(rt, name, link.source_server_id, specs, actor_id=actor_id,
                                                actor_name=actor_name, channel_id=channel_id,
                                                idempotency_key=idempotency_key, claim=claim)
    with session_scope(rt.database_url) as session:
        if not made:  # the batch made for this very request by a first try that got that far: the same jobs
            _claim(session, chosen, jobs)
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="gather.jobs",
                     target=f"link {link_id}", params={"batch": batch.id, "jobs": len(jobs),
                                                       "approved": sorted(options.approved & {r.id for r in chosen}),
                                                       "mailboxes_created": len(outcome.created),
                                                       "dry_run": options.dry_run, "skipped": len(outcome.problems)})
    outcome.batch_id, outcome.jobs = batch.id, len(jobs)
    return outcome


def _claim(session: Session, rows: list[GatherSubmission], jobs: list[MigrationJob]) -> int:
    """Each row not yet taken gets its job (by source address) and loses its credentials (the
    job keeps them); how many were taken here."""
    by_source = {job.source_email.lower(): job for job in jobs}
    now = datetime.now(timezone.utc)
    taken = 0
    for row in rows:
        job = by_source.get(row.email.lower())
        if job is not None:
            taken += session.execute(
                update(GatherSubmission).where(GatherSubmission.id == row.id, GatherSubmission.job_id.is_(None))
                .values(job_id=job.id, ciphertext=None, key_id=None, credentials_purged_at=now, mailbox_pending=None)
                .returning(GatherSubmission.id)).first() is not None
    return taken


def _ours(row: GatherSubmission, address: str) -> bool:
    """The mailbox was noted as being created for this submission by an earlier Create jobs."""
    return bool(row.mailbox_pending) and row.mailbox_pending.lower() == address.lower()


def _ensure_mailbox(rt: Runtime, row: GatherSubmission, address: str, outcome: JobsOutcome, *, actor_id: str,
                    actor_name: str, exists: bool | None = None) -> bool | None:
    """True: it existed; False: created now (its password in the outcome); None: it could
    not be created (the problem in the outcome). `exists`: already asked. The submission
    notes the mailbox before PurelyMail is asked to create it: if this run dies before the
    admin sees the password, the next run finds the note and the mailbox, and resets its
    password (shown then): never a password nobody knows, nor a wrong one."""
    if _ours(row, address) and mailbox_exists(rt, address):
        password = mailboxes.reset_password(rt, address, None, actor_id=actor_id, actor_name=actor_name)
        outcome.created.append((address, password))
        return False
    if exists if exists is not None else (_cached(rt, {address}) or mailbox_exists(rt, address)):
        outcome.existing += 1
        return True
    with session_scope(rt.database_url) as session:
        session.execute(update(GatherSubmission).where(GatherSubmission.id == row.id).values(mailbox_pending=address))
    local, _, domain = address.partition("@")
    try:
        password = mailboxes.create_user(rt, mailboxes.NewMailbox(local, domain, None), actor_id=actor_id,
                                         actor_name=actor_name)
    except RequestRejected as error:
        if mailbox_exists(rt, address):  # made meanwhile (or by a first try of this very request)
            outcome.existing += 1
            return True
        outcome.problems.append(f"PurelyMail did not create {address}: {error.message}")
        return None
    outcome.created.append((address, password))
    return False


CREATE_JOB = "workers.gather.run_create_jobs"  # enqueued by name: callers never import the workers


def enqueue_create_jobs(rt: Runtime, link_id: int, options: JobOptions, *, actor_id: str, actor_name: str,
                        channel_id: str, view_id: str, title: str, idempotency_key: str) -> None:
    """Create jobs runs on a worker: a mailbox a second at PurelyMail's pace is longer than
    a click may take. Its arguments are plain and hold no secret."""
    Queue("default", connection=rt.redis).enqueue(
        CREATE_JOB, link_id, options.domain, options.dry_run, options.exclude, options.max_age_days, actor_id,
        actor_name, channel_id, view_id, title, idempotency_key,
        None if options.rows is None else list(options.rows), sorted(options.approved),
        job_id=f"gather-create-{idempotency_key[:32]}",
        job_timeout=3600, result_ttl=600, failure_ttl=24 * 3600, description=f"create the jobs of credential link "
                                                                              f"{link_id}")


def purge_unused_credentials(rt: Runtime, now: datetime | None = None) -> int:
    """Delete the ciphertext of every submission without a job whose link closed or expired
    more than CREDENTIAL_RETENTION_DAYS ago."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=rt.settings.credential_retention_days)
    ended = func.least(func.coalesce(GatherLink.closed_at, GatherLink.expires_at), GatherLink.expires_at)
    with session_scope(rt.database_url) as session:
        ids = select(GatherSubmission.id).join(GatherLink, GatherSubmission.link_id == GatherLink.id).where(
            GatherSubmission.ciphertext.is_not(None), GatherSubmission.job_id.is_(None), ended < cutoff)
        purged = session.execute(update(GatherSubmission).where(GatherSubmission.id.in_(ids))
                                 .values(ciphertext=None, key_id=None, credentials_purged_at=now)).rowcount
        if purged:
            audit.record(session, actor_id="purelyops", action="gather.purge", target="unused credentials",
                         params={"submissions": purged, "retention_days": rt.settings.credential_retention_days})
        return purged


# ---- the public form ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a person typed into the form (passwords included: never logged or echoed)."""

    full_name: str
    email: str
    password: str
    new_address: str | None
    new_password: str

    def __repr__(self) -> str:  # a stray repr never carries the passwords
        return f"Answer(full_name={self.full_name!r}, email={self.email!r}, new_address={self.new_address!r})"


def check_answer(fields: dict[str, str]) -> Answer:
    """The form's fields, checked all at once; FieldProblems names each bad field (in words
    for the person, never repeating a password)."""
    problems: dict[str, str] = {}
    values = {name: fields.get(name, "") for name in LIMITS}
    for name, limit in LIMITS.items():
        if len(values[name]) > limit:
            problems[name] = f"This is too long: at most {limit} characters."
    full_name = " ".join(values["full_name"].split())
    if "full_name" not in problems:
        if not full_name:
            problems["full_name"] = "Enter your full name."
        elif _CONTROL.search(full_name):
            problems["full_name"] = "Enter your name on one line."
    email = values["email"].strip()
    if "email" not in problems:
        normal = login_address(email)
        if normal is None:
            problems["email"] = ("Enter the address of your old mailbox, like name@example.com (without quotes or "
                                 "spaces).")
        else:
            email = normal
    password = values["password"]
    if "password" not in problems:
        problem = migrations.password_problem(password)
        if problem:
            problems["password"] = f"Enter the password of your old mailbox (it {problem})." if password else \
                "Enter the password of your old mailbox."
    new_address: str | None = values["new_address"].strip() or None
    if new_address and "new_address" not in problems:
        try:
            new_address = mailboxes.check_address(new_address)
        except mailboxes.MailboxError:
            problems["new_address"] = "Enter a full address, like name@example.com, or leave this empty."
    new_password = values["new_password"]
    if new_password and "new_password" not in problems:
        problem = migrations.password_problem(new_password)
        if problem:
            problems["new_password"] = f"This password {problem}."
    if problems:
        raise FieldProblems(problems)
    return Answer(full_name, email, password, new_address, new_password)


def login_address(raw: str) -> str | None:
    """The old address in one canonical spelling (the domain lower-cased, without a trailing
    dot, IDN in punycode; the local part as typed), or None when IMAP could read it as
    something else: quotes, backslashes, spaces, control characters, a leading hyphen,
    empty or doubled dots, or letters outside ASCII before the @."""
    local, at, domain = raw.strip().rpartition("@")
    if not at or len(local) > 64 or not _LOCAL_ATOM.match(local) or local.startswith("-"):
        return None
    try:
        return f"{local}@{normalize_domain(domain).ascii}"
    except InvalidDomain:
        return None


class Verdict(StrEnum):
    ACCEPTED = "accepted"  # 200
    INVALID = "invalid"  # 422, a field is wrong
    LOGIN_FAILED = "login failed"  # 422
    DUPLICATE = "duplicate"  # 409
    TOO_MANY = "too many attempts"  # 429
    NEW_LOGIN_FAILED = "new login failed"  # 422: the new mailbox's password did not log in at PurelyMail
    UNREACHABLE = "unreachable"  # 503: the old server did not answer, or its certificate is not trusted
    BUSY = "busy"  # 503: CHECK_SLOTS logins are being tried already (not an attempt)
    UNKNOWN = "unknown"  # 404
    CLOSED = "closed"  # 410


@dataclass(frozen=True)
class Result:
    verdict: Verdict
    link: GatherLink | None = None
    submission: GatherSubmission | None = None
    problems: dict[str, str] = field(default_factory=dict)
    retry_after: int = 0
    destination: str = ""


def find_link(rt: Runtime, token: str) -> GatherLink | None:
    """The link this token opens, if any (by the token's SHA-256)."""
    if not TOKEN_SHAPE.match(token):
        return None
    with session_scope(rt.database_url) as session:
        link = session.scalars(select(GatherLink).where(GatherLink.token_hash == token_digest(token))).one_or_none()
        if link is not None:
            session.expunge(link)
        return link


def submit(rt: Runtime, token: str, fields: dict[str, str], client_ip: str) -> Result:
    """A person's form, from the link's state to the stored submission. The new address
    must be at one of the link's domains. The login is tried before anything is stored; so
    is the new mailbox's password, when one is given, with a real login at PurelyMail. A
    refused or unanswered login, and an address that was already submitted, count against
    the address and the IP (so the link cannot be used to learn who submitted). At most
    CHECK_SLOTS logins are tried at once across every web process: beyond, BUSY (not counted)."""
    link = find_link(rt, token)
    if link is None:
        return Result(Verdict.UNKNOWN)
    if state_of(link) is not LinkState.ACTIVE:
        return Result(Verdict.CLOSED, link)
    try:
        answer = check_answer(fields)
        destination = _destination_problem(link, answer)
    except FieldProblems as invalid:
        return Result(Verdict.INVALID, link, problems=invalid.problems)
    with CheckSlot(rt) as slot:
        if not slot.taken:  # before anything else is asked of Redis or the database: a flood costs little
            return Result(Verdict.BUSY, link)
        attempt = Attempt(rt, answer.email, client_ip)
        wait = attempt.begin()
        if wait:
            return Result(Verdict.TOO_MANY, link, retry_after=wait)
        counted = False
        try:
            if _submitted(rt, link.id, answer.email):
                counted = True  # asking who already submitted costs attempts
                return Result(Verdict.DUPLICATE, link)
            verdict = _login(rt, link, link.source_host, link.source_port, link.source_security, answer.email,
                             answer.password)
            counted = verdict is Verdict.LOGIN_FAILED
            if verdict is not None:
                return Result(verdict, link)
            proven = None
            if answer.new_password and destination:
                verdict = _login(rt, link, rt.settings.purelymail_imap_host, rt.settings.purelymail_imap_port,
                                 "tls" if rt.settings.purelymail_imap_tls else "none", destination,
                                 answer.new_password)
                counted = verdict is Verdict.LOGIN_FAILED
                if counted:
                    return Result(Verdict.NEW_LOGIN_FAILED, link, destination=destination)
                if verdict is not None:
                    return Result(verdict, link)
                proven = destination
        finally:
            if not counted:
                attempt.forget()
    redact(answer.password, answer.new_password)
    return _store(rt, link, answer, proven)


def _destination_problem(link: GatherLink, answer: Answer) -> str:
    """Where this person's mail would go; FieldProblems when that is not the admin's choice:
    a new address outside the link's domains, or an old name that is no mailbox name."""
    domains = link_domains(link)
    if answer.new_address:
        domain = answer.new_address.rpartition("@")[2]
        if domain not in domains:
            where = " or ".join(f"@{d}" for d in domains)
            raise FieldProblems({"new_address": f"Your new address must end in {where}; leave this empty for the "
                                                "same name there." if domains else
                                 "This link takes no new address; leave this empty."})
        return answer.new_address
    if not domains:
        return ""
    try:
        return destination_of(answer.email, None, domains[0]) or ""
    except mailboxes.MailboxError:
        raise FieldProblems({"new_address": f"Enter your new address at @{domains[0]}: the part before the @ of "
                                            "your old one cannot be used there."}) from None


def _login(rt: Runtime, link: GatherLink, host: str, port: int, security: str, address: str,
           password: str) -> Verdict | None:
    """None: the login worked; LOGIN_FAILED: refused, or never answered once it was sent;
    UNREACHABLE: it could not be tried."""
    ok, words = servers.test_login(rt, host, port, security, address, password, timeout=LOGIN_CHECK_TIMEOUT)
    if ok:
        return None
    if words.startswith((servers.LOGIN_REFUSED, servers.LOGIN_UNANSWERED)):
        return Verdict.LOGIN_FAILED
    _log.warning("credential link %s: the login check could not be made: %s", link.id,
                 words.replace(address, "<address>"))
    return Verdict.UNREACHABLE


def _submitted(rt: Runtime, link_id: int, email: str) -> bool:
    with session_scope(rt.database_url) as session:
        return session.scalar(select(func.count()).select_from(GatherSubmission).where(
            GatherSubmission.link_id == link_id, func.lower(GatherSubmission.email) == email.lower())) > 0


def _store(rt: Runtime, link: GatherLink, answer: Answer, proven: str | None) -> Result:
    try:
        with session_scope(rt.database_url) as session:
            # The link's row is held (FOR SHARE) so that a close cannot slip in between.
            current = session.get(GatherLink, link.id, with_for_update={"read": True})
            if current is None or state_of(current) is not LinkState.ACTIVE:
                return Result(Verdict.CLOSED, link)
            row = GatherSubmission(link_id=link.id, full_name=answer.full_name, email=answer.email,
                                   new_address=answer.new_address, dest_proven=proven)
            session.add(row)
            session.flush()
            secret = {"source": answer.password, "dest": answer.new_password if proven else ""}
            row.key_id, row.ciphertext = crypto.encrypt(rt.settings.credential_keys, secret, _submission_aad(row.id))
            audit.record(session, actor_id=PUBLIC_ACTOR, actor_name=answer.email[:255], action="gather.submit",
                         target=f"link {link.id}", params={"email": answer.email, "name": answer.full_name,
                                                           "new_address": answer.new_address,
                                                           "new_password": bool(answer.new_password),
                                                           "new_password_proven": proven is not None})
            session.flush()
            session.expunge(row)
            session.expunge(current)
            return Result(Verdict.ACCEPTED, current, row)
    except IntegrityError:  # the same address, submitted at the same moment
        return Result(Verdict.DUPLICATE, link)


# ---- failed attempts, counted in Redis for every web process ------------------------------------

# Both budgets keep time by Redis' clock (slots.REDIS_NOW), never a web process's: a process
# whose clock runs ahead or behind neither frees what the others hold nor locks anyone out
# for longer.

# KEYS: the address's and the IP's key. ARGV: window (ms), limit, member.
# 0 and both keys hold `member` (an attempt under way); else the ms until one slot frees.
_BEGIN = slots.REDIS_NOW + """
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local left = tonumber(oldest[2]) + window - now
    if left > wait then wait = left end
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return 0
"""


class Attempt:
    """One login attempt on the form, counted against its address and its IP address. An
    attempt is counted while it runs (so that parallel tries cannot pass the limit) and
    stays counted, as a failure, unless `forget` is called."""

    def __init__(self, rt: Runtime, email: str, client_ip: str) -> None:
        self.rt = rt
        self.keys = [f"purelyops:gather:failures:address:{_digest(email.strip().lower())}",
                     f"purelyops:gather:failures:ip:{_digest(client_ip)}"]
        self.member = uuid.uuid4().hex

    def begin(self) -> int:
        """0 when the attempt may go on; otherwise the seconds until it may."""
        wait_ms = self.rt.redis.eval(_BEGIN, len(self.keys), *self.keys, FAIL_WINDOW_S * 1000, FAIL_LIMIT,
                                     self.member)
        return math.ceil(int(wait_ms) / 1000) if wait_ms else 0

    def forget(self) -> None:
        pipe = self.rt.redis.pipeline()
        for key in self.keys:
            pipe.zrem(key, self.member)
        pipe.execute()


# ---- the login checks' budget, shared by every web process --------------------------------------

# KEYS: the slots' sorted set. ARGV: slots, how long a slot is held (ms), member. Scores are
# deadlines by Redis' clock. A slot whose deadline passed is free again: a process that died
# holding one leaks nothing.
_TAKE_SLOT = slots.REDIS_NOW + """
local hold = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + hold, ARGV[3])
redis.call('PEXPIRE', KEYS[1], hold)
return 1
"""


class CheckSlot:
    """One of CHECK_SLOTS login checks at once, across every web process (a sorted set in
    Redis; each slot expires by itself after the longest a check can take)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.member = uuid.uuid4().hex
        self.taken = False

    def __enter__(self) -> CheckSlot:
        hold_ms = int((2 * LOGIN_CHECK_TIMEOUT + 2 * self.rt.settings.dns_timeout + 5) * 1000)
        self.taken = bool(self.rt.redis.eval(_TAKE_SLOT, 1, CHECK_SLOTS_KEY, CHECK_SLOTS, hold_ms, self.member))
        return self

    def __exit__(self, *exc: object) -> None:
        if self.taken:
            self.rt.redis.zrem(CHECK_SLOTS_KEY, self.member)


def _digest(value: str) -> str:
    """Redis keys name addresses and IPs by a digest: the counts need no one's address."""
    return hashlib.sha256(f"purelyops-gather:{value}".encode()).hexdigest()[:32]

