"""Migrations: the job rows, their credentials, and every action on them.

A job is a row in PostgreSQL (the source of truth); the RQ job carries only its id.
Credentials are encrypted with AES-256-GCM (purelyops.crypto) bound to the job id,
and purged when the job succeeds, when it is deleted, or after the retention period.
The worker (workers/migration.py) runs imapsync; this module creates, queues, cancels,
re-runs and deletes, for the Slack listeners and the tests alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update

from db.models import MigrationBatch, MigrationJob, SourceServer
from db.session import session_scope
from purelyops import audit, crypto
from purelyops.logs import redact
from purelyops.runtime import Runtime

STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
CANCEL_KEY = "purelyops:migration:cancel:{}"
MAX_REGEX = 200
MAX_PASSWORD = 1024


class MigrationError(Exception):
    """An action that cannot be carried out now; the message is for the admin."""


@dataclass(frozen=True)
class JobSpec:
    server_id: int
    source_email: str
    source_password: str
    dest_email: str
    dest_password: str  # "": a temporary app password, created for the run and deleted after
    dry_run: bool = False
    exclude: str | None = None
    max_age_days: int | None = None


def password_problem(value: str, *, required: bool = True) -> str | None:
    """What is wrong with a password for an IMAP login, to follow its name ("… is empty"),
    never echoing it; None when it will do."""
    if not value:
        return "is empty" if required else None
    if len(value) > MAX_PASSWORD:
        return f"is longer than {MAX_PASSWORD} characters"
    if any(ch in value for ch in "\r\n\x00"):
        return "contains a line break or a NUL character"
    return None


def check_exclude(pattern: str) -> str:
    """A folder-exclusion regex imapsync (Perl) will take, checked without running it on
    anything: it must compile, be short, and have nothing that can make matching take
    exponential time: no back-reference, no extension (?…), no repeated group with a repeat
    or alternatives that start alike inside (purelyops.folder_regex says which)."""
    from purelyops.folder_regex import BACKREFERENCE, EXTENSION, regex_problem

    pattern = pattern.strip()
    if len(pattern) > MAX_REGEX:
        raise MigrationError(f"the folder pattern can have at most {MAX_REGEX} characters")
    if pattern.startswith("-"):
        raise MigrationError("the folder pattern cannot start with -")
    if any(ch in pattern for ch in "\x00\n\r"):
        raise MigrationError("the folder pattern cannot contain line breaks or NUL")
    problem = regex_problem(pattern)
    if problem in (BACKREFERENCE, EXTENSION):  # said before Python's re calls \g or (?{ merely invalid
        raise MigrationError(problem)
    try:
        re.compile(pattern)
    except re.error as error:
        raise MigrationError(f"the folder pattern is not a valid regular expression: {error}") from None
    if problem:
        raise MigrationError(problem)
    return pattern


def credentials(rt: Runtime, job: MigrationJob) -> dict[str, str]:
    """The job's passwords, decrypted (CredentialsUnreadable if they cannot be)."""
    if job.ciphertext is None or job.key_id is None:
        raise crypto.CredentialsUnreadable("the credentials of this job were purged; enter them again (Edit credentials)")
    secrets = crypto.decrypt(rt.settings.credential_keys, job.key_id, job.ciphertext, f"migration:{job.id}")
    redact(*secrets.values())
    return secrets


def _store_credentials(rt: Runtime, job: MigrationJob, secrets: dict[str, str]) -> None:
    job.key_id, job.ciphertext = crypto.encrypt(rt.settings.credential_keys, secrets, f"migration:{job.id}")
    job.credentials_purged_at = None


def create_job(rt: Runtime, spec: JobSpec, *, actor_id: str, actor_name: str, channel_id: str,
               idempotency_key: str) -> tuple[MigrationJob, bool]:
    """Write the job (credentials encrypted) and audit it. The same idempotency key again
    returns the first job and False: a retried or double-submitted request makes one job."""
    redact(spec.source_password, spec.dest_password)
    with session_scope(rt.database_url) as session:
        existing = session.scalars(select(MigrationJob).where(MigrationJob.idempotency_key == idempotency_key)).first()
        if existing is not None:
            session.expunge(existing)
            return existing, False
        server = session.get(SourceServer, spec.server_id)
        if server is None:
            raise MigrationError("That source server was removed meanwhile; choose another.")
        job = MigrationJob(source_server_id=server.id, source_host=server.host, source_port=server.port,
                           source_security=server.security, source_email=spec.source_email,
                           dest_email=spec.dest_email, dry_run=spec.dry_run, exclude=spec.exclude,
                           max_age_days=spec.max_age_days, status="queued", channel_id=channel_id,
                           created_by=actor_id, idempotency_key=idempotency_key, attempts=0, msgs_done=0,
                           msgs_total=0, bytes_done=0, bytes_total=0)
        session.add(job)
        session.flush()
        _store_credentials(rt, job, {"source": spec.source_password, "dest": spec.dest_password})
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="migration.create",
                     target=f"#{job.id}", params={"source": spec.source_email, "dest": spec.dest_email,
                                                  "server": server.name, "dry_run": spec.dry_run,
                                                  "exclude": spec.exclude, "max_age_days": spec.max_age_days})
        session.flush()
        session.expunge(job)
        return job, True


def get_job(rt: Runtime, job_id: int) -> MigrationJob:
    with session_scope(rt.database_url) as session:
        job = session.get(MigrationJob, job_id)
        if job is None:
            raise MigrationError(f"There is no migration #{job_id}.")
        session.expunge(job)
        return job


def list_jobs(rt: Runtime, status: str | None = None, limit: int = 20, batch: str | None = None) -> list[MigrationJob]:
    """The newest jobs, optionally only those in `status`, or in the batches named `batch`."""
    with session_scope(rt.database_url) as session:
        query = select(MigrationJob).order_by(MigrationJob.id.desc()).limit(limit)
        if status:
            query = query.where(MigrationJob.status == status)
        if batch:
            query = query.join(MigrationBatch, MigrationJob.batch_id == MigrationBatch.id).where(
                func.lower(MigrationBatch.name) == batch.lower())
        jobs = list(session.scalars(query))
        session.expunge_all()
        return jobs


def remember_thread(rt: Runtime, job_id: int, thread_ts: str) -> None:
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(thread_ts=thread_ts))


def _transition(rt: Runtime, job_id: int, allowed: tuple[str, ...], action: str, actor_id: str, actor_name: str,
                refuse: str, **values: object) -> MigrationJob:
    """Move a job from one of `allowed` states, once: a second click finds it moved."""
    with session_scope(rt.database_url) as session:
        job = session.scalars(update(MigrationJob)
                              .where(MigrationJob.id == job_id, MigrationJob.status.in_(allowed))
                              .values(**values).returning(MigrationJob)).one_or_none()
        if job is None:
            current = session.get(MigrationJob, job_id)
            if current is None:
                raise MigrationError(f"There is no migration #{job_id}.")
            raise MigrationError(refuse.format(id=job_id, status=current.status))
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action=f"migration.{action}",
                     target=f"#{job_id}")
        session.flush()
        session.expunge(job)
        return job


def cancel_job(rt: Runtime, job_id: int, *, actor_id: str, actor_name: str = "") -> MigrationJob:
    """A queued job is cancelled at once; a running one is told to stop (the worker
    sends SIGTERM, then SIGKILL after the grace period) and ends as cancelled."""
    with session_scope(rt.database_url) as session:
        job = session.get(MigrationJob, job_id)
        status = job.status if job else None
    if status == "running":
        rt.redis.set(CANCEL_KEY.format(job_id), actor_id, ex=24 * 3600)
        audit.record_now(rt, actor_id=actor_id, actor_name=actor_name, action="migration.cancel", target=f"#{job_id}")
        return get_job(rt, job_id)
    return _transition(rt, job_id, ("queued",), "cancel", actor_id, actor_name,
                       "Migration #{id} is {status}; only queued or running migrations can be cancelled.",
                       status="cancelled", finished_at=datetime.now(timezone.utc), verdict="cancelled before it started")


def cancel_requested(rt: Runtime, job_id: int) -> str | None:
    value = rt.redis.get(CANCEL_KEY.format(job_id))
    return value.decode() if value else None


def requeue(rt: Runtime, job_id: int, *, actor_id: str, actor_name: str = "", dry_run: bool | None = None) -> MigrationJob:
    """Re-run a failed, interrupted or cancelled job (or, with dry_run=False, a finished
    dry run for real). Its credentials must still be there."""
    job = get_job(rt, job_id)
    if job.ciphertext is None:
        raise MigrationError(f"The credentials of migration #{job_id} were purged; use Edit credentials first.")
    allowed = ("done",) if dry_run is False else ("failed", "interrupted", "cancelled")
    action = "run_for_real" if dry_run is False else "rerun"
    values: dict[str, object] = {"status": "queued", "exit_code": None, "verdict": None, "finished_at": None,
                                 "msgs_done": 0, "bytes_done": 0}
    if dry_run is False:
        if not job.dry_run:
            raise MigrationError(f"Migration #{job_id} was not a dry run.")
        values["dry_run"] = False
    rt.redis.delete(CANCEL_KEY.format(job_id))
    return _transition(rt, job_id, allowed, action, actor_id, actor_name,
                       "Migration #{id} is {status}; it cannot be " + ("run for real" if dry_run is False else "re-run")
                       + " now.", **values)


def update_credentials(rt: Runtime, job_id: int, *, source_password: str | None, dest_password: str | None,
                       actor_id: str, actor_name: str = "") -> MigrationJob:
    """Replace either password (None: keep it). Not while the job runs."""
    redact(source_password, dest_password)
    with session_scope(rt.database_url) as session:
        job = session.get(MigrationJob, job_id, with_for_update=True)
        if job is None:
            raise MigrationError(f"There is no migration #{job_id}.")
        if job.status == "running":
            raise MigrationError(f"Migration #{job_id} is running; cancel it first.")
        try:
            current = credentials(rt, job)
        except crypto.CredentialsUnreadable:
            current = {}
        new = {"source": source_password or current.get("source"),
               "dest": dest_password if dest_password is not None else current.get("dest", "")}
        if not new["source"]:
            raise MigrationError("The old credentials are gone: give the source password.")
        _store_credentials(rt, job, new)  # type: ignore[arg-type]
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="migration.credentials",
                     target=f"#{job_id}", params={"source": source_password is not None, "dest": dest_password is not None})
        session.flush()
        session.expunge(job)
        return job


def delete_job(rt: Runtime, job_id: int, *, actor_id: str, actor_name: str = "") -> None:
    """Delete a job that is not running, purging its credentials with it."""
    with session_scope(rt.database_url) as session:
        job = session.get(MigrationJob, job_id, with_for_update=True)
        if job is None:
            raise MigrationError(f"There is no migration #{job_id}.")
        if job.status == "running":
            raise MigrationError(f"Migration #{job_id} is running; cancel it first.")
        session.delete(job)
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="migration.delete", target=f"#{job_id}")


def purge_old_credentials(rt: Runtime, now: datetime | None = None) -> int:
    """Delete the ciphertext of jobs that ended more than CREDENTIAL_RETENTION_DAYS ago."""
    now = now or datetime.now(timezone.utc)
    cutoff = now - timedelta(days=rt.settings.credential_retention_days)
    with session_scope(rt.database_url) as session:
        purged = session.execute(update(MigrationJob).where(
            MigrationJob.ciphertext.is_not(None), MigrationJob.status.not_in(("queued", "running")),
            MigrationJob.finished_at < cutoff,
        ).values(ciphertext=None, key_id=None, credentials_purged_at=now))
        return purged.rowcount


# ---- batches ----------------------------------------------------------------------------------


def create_batch(rt: Runtime, name: str, server_id: int, specs: list[JobSpec], *, actor_id: str, actor_name: str,
                 channel_id: str, idempotency_key: str) -> tuple[MigrationBatch, list[MigrationJob], bool]:
    """Every job of a CSV in one transaction (all or nothing), or the batch already made
    for this key."""
    for spec in specs:
        redact(spec.source_password, spec.dest_password)
    with session_scope(rt.database_url) as session:
        existing = session.scalars(select(MigrationBatch).where(MigrationBatch.idempotency_key == idempotency_key)).first()
        if existing is not None:
            jobs = list(session.scalars(select(MigrationJob).where(MigrationJob.batch_id == existing.id)))
            session.expunge_all()
            return existing, jobs, False
        server = session.get(SourceServer, server_id)
        if server is None:
            raise MigrationError("That source server was removed meanwhile; choose another.")
        batch = MigrationBatch(name=name, channel_id=channel_id, created_by=actor_id, idempotency_key=idempotency_key)
        session.add(batch)
        session.flush()
        jobs = []
        for n, spec in enumerate(specs):
            job = MigrationJob(batch_id=batch.id, source_server_id=server.id, source_host=server.host,
                               source_port=server.port, source_security=server.security,
                               source_email=spec.source_email, dest_email=spec.dest_email, dry_run=spec.dry_run,
                               status="queued", channel_id=channel_id, created_by=actor_id,
                               idempotency_key=f"{idempotency_key[:48]}-{n}", attempts=0, msgs_done=0,
                               msgs_total=0, bytes_done=0, bytes_total=0)
            session.add(job)
            jobs.append((job, spec))
        session.flush()
        for job, spec in jobs:
            _store_credentials(rt, job, {"source": spec.source_password, "dest": spec.dest_password})
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="migration.batch.create",
                     target=f"batch {batch.id}", params={"name": name, "jobs": len(jobs), "server": server.name,
                                                         "dry_run": bool(specs and specs[0].dry_run)})
        session.flush()
        session.expunge_all()
        return batch, [job for job, _ in jobs], True


def batch_jobs(rt: Runtime, batch_id: int) -> tuple[MigrationBatch, list[MigrationJob]]:
    with session_scope(rt.database_url) as session:
        batch = session.get(MigrationBatch, batch_id)
        if batch is None:
            raise MigrationError(f"There is no batch {batch_id}.")
        jobs = list(session.scalars(select(MigrationJob).where(MigrationJob.batch_id == batch_id)
                                    .order_by(MigrationJob.id)))
        session.expunge_all()
        return batch, jobs


def remember_batch_message(rt: Runtime, batch_id: int, ts: str) -> None:
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationBatch).where(MigrationBatch.id == batch_id).values(message_ts=ts))
        session.execute(update(MigrationJob).where(MigrationJob.batch_id == batch_id).values(thread_ts=ts))


def batch_action(rt: Runtime, batch_id: int, action: str, *, actor_id: str, actor_name: str = "") -> tuple[str, list[int]]:
    """"run_all" (finished dry runs for real), "cancel_all" or "rerun_failed": words, and
    the ids to put on the queue."""
    _, jobs = batch_jobs(rt, batch_id)
    touched: list[int] = []
    for job in jobs:
        try:
            if action == "run_all" and job.status == "done" and job.dry_run:
                touched.append(requeue(rt, job.id, actor_id=actor_id, actor_name=actor_name, dry_run=False).id)
            elif action == "cancel_all" and job.status in ("queued", "running"):
                cancel_job(rt, job.id, actor_id=actor_id, actor_name=actor_name)
                touched.append(job.id)
            elif action == "rerun_failed" and job.status in ("failed", "interrupted", "cancelled"):
                touched.append(requeue(rt, job.id, actor_id=actor_id, actor_name=actor_name).id)
        except MigrationError:
            continue  # it moved meanwhile (a double click); the others still go
    words = {"run_all": "queued for real", "cancel_all": "cancelled or stopping", "rerun_failed": "queued again"}[action]
    return f"{len(touched)} migration(s) of the batch {words}.", ([] if action == "cancel_all" else touched)
