"""The PostgreSQL tables purelyops keeps. Alembic (db/schema) creates them.

PostgreSQL is the source of truth; Redis only carries queues, locks and rate budgets.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class AuditEntry(Base):
    """One mutation or refusal: who did what to which target, and how it ended.

    `params` never holds a secret: callers pass only what is safe to show.
    """

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = _now()
    actor_id: Mapped[str] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(255), default="")
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512), default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    result: Mapped[str] = mapped_column(String(16))  # ok | refused | failed
    detail: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_actor_id", "actor_id"))


class PendingDeletion(Base):
    """A deletion scheduled for later (domains, mailboxes, routing rules share one queue)."""

    __tablename__ = "deletion_queue"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # domain | user | routing_rule
    target: Mapped[str] = mapped_column(String(320))
    detail: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = _now()
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_by: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    channel_id: Mapped[str | None] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    # Tries that PurelyMail could not answer (5xx, timeout) so far (revision 0009): retried with back-off.
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    __table_args__ = (
        Index("ix_deletion_queue_due", "due_at", postgresql_where=text("status = 'pending'")),
        # One pending deletion per target: a double click cannot schedule two.
        Index(
            "uq_deletion_queue_pending_target",
            "kind",
            "target",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
    )


class Mailbox(Base):
    """The mailbox cache: every PurelyMail mailbox as of the last sync or our own change."""

    __tablename__ = "mailboxes"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    local_part: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(253))
    first_seen: Mapped[datetime] = _now()
    last_seen: Mapped[datetime] = _now()
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    details_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_mailboxes_domain_address", "domain", "address"),
        Index(
            "ix_mailboxes_address_trgm",
            "address",
            postgresql_using="gin",
            postgresql_ops={"address": "gin_trgm_ops"},
        ),
    )


class Domain(Base):
    """The domains cache: PurelyMail's view (dnsSummary) and our own last DNS check."""

    __tablename__ = "domains"

    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    unicode_name: Mapped[str] = mapped_column(String(253), default="")
    is_shared: Mapped[bool] = mapped_column(Boolean, default=False)
    allow_account_reset: Mapped[bool] = mapped_column(Boolean, default=False)
    symbolic_subaddressing: Mapped[bool] = mapped_column(Boolean, default=False)
    passes_mx: Mapped[bool] = mapped_column(Boolean, default=False)
    passes_spf: Mapped[bool] = mapped_column(Boolean, default=False)
    passes_dkim: Mapped[bool] = mapped_column(Boolean, default=False)
    passes_dmarc: Mapped[bool] = mapped_column(Boolean, default=False)
    check: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Our last check passed (None: never checked; PurelyMail's dnsSummary stands in until then).
    healthy: Mapped[bool | None] = mapped_column(Boolean)
    # The record kinds the DNS monitor last announced as failing (None: not yet watched).
    alert_state: Mapped[list[str] | None] = mapped_column(JSONB)
    first_seen: Mapped[datetime] = _now()
    last_seen: Mapped[datetime] = _now()


class SyncState(Base):
    """When a periodic job last ran and how it ended (mailbox sync, DNS monitor, credit)."""

    __tablename__ = "sync_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_ok_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


# --- domains (issue 3): migration 0002 adds Domain.healthy and Domain.alert_state ---


# --- users and routing rules (issue 4): tables added by migration 0003 ---


# --- source servers and migrations (issue 5): tables added by migration 0004 ---


class SourceServer(Base):
    """An old IMAP host that mailboxes are migrated from: connection details, and for a token
    sign-in its app's or service account's secrets, encrypted (never a mailbox's password)."""

    __tablename__ = "source_servers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    security: Mapped[str] = mapped_column(String(16))  # "tls" (on connect), "starttls" or "none"
    # A mail provider (purelyops.providers; revision 0007): its host, 993 and TLS, and imapsync's
    # options for it. "other": the admin gave host, port and security.
    provider: Mapped[str] = mapped_column(String(16), default="other", server_default="other")
    # How its mailboxes are signed in to (revision 0011): "password" (each job's own), or with a
    # token from "microsoft365_app" or "google_workspace" (purelyops.oauth_tokens), whose
    # secrets (client secret or certificate, the JSON key) are encrypted here, bound to the row.
    auth: Mapped[str] = mapped_column(String(16), default="password", server_default="password")
    auth_key_id: Mapped[str | None] = mapped_column(String(16))
    auth_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()


class MigrationBatch(Base):
    """Migrations started together from one CSV: one Slack message carries their progress."""

    __tablename__ = "migration_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)


class MigrationJob(Base):
    """One mailbox move, source → PurelyMail. PostgreSQL is its source of truth; the RQ
    job carries only the id. Credentials are stored encrypted (purelyops.crypto) and
    deleted when the job succeeds, or after CREDENTIAL_RETENTION_DAYS."""

    __tablename__ = "migration_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("migration_batches.id", ondelete="CASCADE"), index=True)
    source_server_id: Mapped[int | None] = mapped_column(ForeignKey("source_servers.id", ondelete="SET NULL"))
    # A copy of the server's connection details: removing the server leaves the job able to run.
    source_host: Mapped[str] = mapped_column(String(253))
    source_port: Mapped[int] = mapped_column(Integer)
    source_security: Mapped[str] = mapped_column(String(16))
    source_provider: Mapped[str] = mapped_column(String(16), default="other", server_default="other")  # revision 0007
    # "password", or the token sign-in of its server (revision 0011): the runner gets a token for
    # source_email from the server's stored sign-in, which `server remove` deletes.
    source_auth: Mapped[str] = mapped_column(String(16), default="password", server_default="password")
    source_email: Mapped[str] = mapped_column(String(320))
    dest_email: Mapped[str] = mapped_column(String(320))
    key_id: Mapped[str | None] = mapped_column(String(16))
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    exclude: Mapped[str | None] = mapped_column(Text)
    max_age_days: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    msgs_done: Mapped[int] = mapped_column(Integer, default=0)
    msgs_total: Mapped[int] = mapped_column(Integer, default=0)
    bytes_done: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_total: Mapped[int] = mapped_column(BigInteger, default=0)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    verdict: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    channel_id: Mapped[str] = mapped_column(String(32))
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    status_ts: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    credentials_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    # The fencing token of the runner that holds the job while it runs (revision 0005): every
    # write of a runner says `WHERE lease = its token`, so a runner that lost the job changes nothing.
    lease: Mapped[str | None] = mapped_column(String(36))
    cancel_requested_by: Mapped[str | None] = mapped_column(String(32))
    # A temporary app password, encrypted, from its creation until PurelyMail has deleted it.
    app_password_key_id: Mapped[str | None] = mapped_column(String(16))
    app_password: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Its owner (revision 0009): the lease token of the run that made it. Only that run, or
    # whoever proves that run is over, may delete it.
    app_password_lease: Mapped[str | None] = mapped_column(String(36))
    # Interruptions since the admin's last action (Run for real, Sync again, Re-run): the
    # budget of automatic re-runs (revision 0009).
    interruptions: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Automatic re-runs after a server could not be reached (revision 0006): how many so far,
    # and when the next may start (MIGRATION_RETRY_DELAYS).
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_migration_jobs_status", "status"),
        Index("uq_migration_jobs_running_dest", text("lower(dest_email)"), unique=True,
              postgresql_where=text("status = 'running'")),
    )


class AppPasswordTombstone(Base):
    """A temporary app password that must be deleted at PurelyMail (revision 0009): moved
    here from its job, in the transaction that proved it was no run's any more (or that
    deleted the job), and kept until PurelyMail has deleted it (or says it is gone)."""

    __tablename__ = "app_password_tombstones"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer)  # no foreign key: it outlives a deleted job
    dest_email: Mapped[str] = mapped_column(String(320))
    key_id: Mapped[str] = mapped_column(String(16))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _now()
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


# --- credential links (issue 12): tables added by migration 0006 ---


class GatherLink(Base):
    """A credential link: a public form at PUBLIC_URL/gather/<token> where mailbox owners
    give the login of their old mailbox. The token is stored as its SHA-256 (to find the
    link) and encrypted (to show the link again to an admin), never in plain text."""

    __tablename__ = "gather_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_key_id: Mapped[str] = mapped_column(String(16))
    token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    source_server_id: Mapped[int | None] = mapped_column(ForeignKey("source_servers.id", ondelete="SET NULL"))
    # A copy of the server's connection details: the form checks logins even if the server is removed.
    source_name: Mapped[str] = mapped_column(String(64))
    source_host: Mapped[str] = mapped_column(String(253))
    source_port: Mapped[int] = mapped_column(Integer)
    source_security: Mapped[str] = mapped_column(String(16))
    # Where the mail may go, chosen by the admin: domains comma-separated, the first one the
    # destination of a person who gives no new address ("" for links older than this column).
    dest_domains: Mapped[str] = mapped_column(String(2600), default="", server_default="")
    channel_id: Mapped[str] = mapped_column(String(32))
    message_ts: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = _now()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)


class GatherSubmission(Base):
    """One person's answer to a credential link: their old login, checked with a real IMAP
    login before it was stored, and their passwords encrypted (purelyops.crypto, bound to
    this row). The ciphertext is deleted when the submission's migration job is created
    (the job keeps its own copy), or CREDENTIAL_RETENTION_DAYS after the link ended."""

    __tablename__ = "gather_submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("gather_links.id", ondelete="CASCADE"), index=True)
    full_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    new_address: Mapped[str | None] = mapped_column(String(320))
    # The destination whose own password the person gave and a real IMAP login at PurelyMail
    # proved before the row was stored; None: no password proven (an existing mailbox then
    # needs the admin's approval in Create jobs).
    dest_proven: Mapped[str | None] = mapped_column(String(320))
    key_id: Mapped[str | None] = mapped_column(String(16))
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = _now()
    job_id: Mapped[int | None] = mapped_column(ForeignKey("migration_jobs.id", ondelete="SET NULL"))
    credentials_purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A mailbox Create jobs asked PurelyMail to create for this submission, whose password the
    # admin has not been shown yet (revision 0009): a run after a crash resets it and shows it.
    mailbox_pending: Mapped[str | None] = mapped_column(String(320))

    __table_args__ = (
        # One submission per address and link: the same email again is "already submitted".
        Index("uq_gather_submissions_link_email", "link_id", text("lower(email)"), unique=True),
    )
