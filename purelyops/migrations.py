"""Migrations: a mailbox move's whole life, from its row to its end.

A job is a row in PostgreSQL (the source of truth); the RQ job carries only its id, and
is enqueued here by its dotted path, so no caller imports the workers. Credentials are
encrypted with AES-256-GCM (purelyops.crypto) bound to the job id, and purged when the
job succeeds, when it is deleted, or CREDENTIAL_RETENTION_DAYS after it ended.

The lifecycle: queued → running → done / incomplete / failed / cancelled / interrupted
("incomplete": the independent check after the run found messages missing at the
destination; see purelyops.mail_check). A runner
`claim`s a queued job and gets a `Lease`: a fencing token written into the row and a
Redis key that the runner's heartbeat renews. Every write a runner makes goes through
`save`/`finish`, which say `WHERE lease = token`: a runner that lost its job changes
nothing, and a runner that cannot renew its Redis key in time stops its imapsync before
the key expires, so `reconcile` can never hand a job to a second runner while the first
still copies. At most one job runs into a mailbox at once (a unique index on running
destinations). A Cancel is a column, not a message: it cannot be lost.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from rq import Queue
from rq.executions import Execution
from rq.utils import as_text
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from db.models import AppPasswordTombstone, MigrationBatch, MigrationJob, SourceServer
from db.session import session_scope
from purelyops import audit, crypto, slots
from purelyops.errors import Refused
from purelyops.folder_regex import BACKREFERENCE, EXTENSION, regex_problem
from purelyops.job_states import ENDED, JobState
from purelyops.logs import redact
from purelyops.purelymail import NotFound, PurelyMailError
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)


MAX_INTERRUPTIONS = 3  # automatic re-runs after an interruption, counted since the admin's last action
LEASE_KEY = "purelyops:migration:lease:{}"
QUEUE = "migrations"
RUN_JOB = "workers.migration.run_migration"  # enqueued by name: callers never import the workers
MAX_REGEX = 200
MAX_PASSWORD = 1024


class MigrationError(Refused):
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


def run_options(values: dict, errors: dict[str, str]) -> tuple[str | None, int | None]:
    """The folder pattern and the age limit of a form (fields "exclude" and "max_age"),
    checked; what is wrong goes into `errors` under the field's name."""
    exclude = str(values.get("exclude") or "").strip() or None
    if exclude:
        try:
            exclude = check_exclude(exclude)
        except MigrationError as error:
            errors["exclude"] = str(error)
    raw_age = str(values.get("max_age") or "").strip()
    max_age = None
    if raw_age:
        if not raw_age.isdigit() or not 1 <= int(raw_age) <= 36500:
            errors["max_age"] = "a whole number of days, from 1 to 36500"
        else:
            max_age = int(raw_age)
    return exclude, max_age


def check_exclude(pattern: str) -> str:
    """A folder-exclusion regex imapsync (Perl) will take, checked without running it on
    anything: it must compile, be short, and have nothing that can make matching take
    exponential time: no back-reference, no extension (?…), no repeated group with a repeat
    or alternatives that start alike inside (purelyops.folder_regex says which)."""
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
        raise crypto.CredentialsUnreadable(
            "the credentials of this job were purged; enter them again (Edit credentials)")
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
                           source_security=server.security, source_provider=server.provider,
                           source_auth=server.auth, source_email=spec.source_email,
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


def list_jobs(rt: Runtime, status: str | None = None, limit: int | None = 20,
              batch: str | None = None) -> list[MigrationJob]:
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
    _set(rt, job_id, thread_ts=thread_ts)


def remember_status_message(rt: Runtime, job_id: int, ts: str) -> None:
    _set(rt, job_id, status_ts=ts)


def record_progress(rt: Runtime, job_id: int, msgs_done: int, msgs_total: int) -> None:
    _set(rt, job_id, msgs_done=msgs_done, msgs_total=msgs_total)


def note_waiting(rt: Runtime, job_id: int, why: str) -> None:
    """Why a queued job has not started yet, shown with it until it starts."""
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == job_id, MigrationJob.status == JobState.QUEUED)
                        .values(verdict=why))


def _set(rt: Runtime, job_id: int, **values: object) -> None:
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(**values))


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
    """A queued job (or one waiting for its automatic re-run) is cancelled at once; a
    running one is marked, and its runner, which reads the mark on every heartbeat, stops
    imapsync (SIGTERM, then SIGKILL after the grace period) and ends it as cancelled."""
    for _ in range(3):  # it may move between queued and running while we look
        with session_scope(rt.database_url) as session:
            job = session.scalars(update(MigrationJob)
                                  .where(MigrationJob.id == job_id, MigrationJob.status == JobState.RUNNING)
                                  .values(cancel_requested_by=actor_id).returning(MigrationJob)).one_or_none()
            if job is not None:
                audit.record(session, actor_id=actor_id, actor_name=actor_name, action="migration.cancel",
                             target=f"#{job_id}")
                session.flush()
                session.expunge(job)
                return job
        try:
            return _transition(rt, job_id, (JobState.QUEUED,), "cancel", actor_id, actor_name,
                               "Migration #{id} is {status}; only queued or running migrations can be cancelled.",
                               status=JobState.CANCELLED, finished_at=func.now(),
                               verdict="cancelled before it started")
        except MigrationError:
            if get_job(rt, job_id).status != JobState.RUNNING:
                raise
    raise MigrationError(f"Migration #{job_id} is changing state right now; try again.")


def requeue(rt: Runtime, job_id: int, *, actor_id: str, actor_name: str = "", dry_run: bool | None = None,
            again: bool = False) -> MigrationJob:
    """Re-run a failed, interrupted or cancelled job; with dry_run=False, a finished dry
    run for real; with `again`, a finished real run once more (it copies only what is new:
    the cut-over on the day the MX records change). Its credentials must still be there.
    The state moves in one conditional update, so a running job (and a Cancel waiting for
    it) is never touched."""
    job = get_job(rt, job_id)
    if job.ciphertext is None:
        raise MigrationError(f"The credentials of migration #{job_id} were purged; use Edit credentials first.")
    if dry_run is False or again:
        allowed: tuple[str, ...] = (JobState.DONE, JobState.INCOMPLETE) if again else (JobState.DONE,)
        action, words = ("sync_again", "synced again") if again else ("run_for_real", "run for real")
    else:
        allowed, action, words = ((JobState.FAILED, JobState.INTERRUPTED, JobState.CANCELLED, JobState.INCOMPLETE),
                                  "rerun", "re-run")
    # The admin acted: the budget of automatic re-runs (retries, interruptions) starts again.
    values: dict[str, object] = {"status": JobState.QUEUED, "exit_code": None, "verdict": None, "finished_at": None,
                                 "msgs_done": 0, "bytes_done": 0, "retries": 0, "retry_at": None,
                                 "interruptions": 0}
    if dry_run is False:
        if not job.dry_run:
            raise MigrationError(f"Migration #{job_id} was not a dry run.")
        values["dry_run"] = False
    if again and job.dry_run:
        raise MigrationError(f"Migration #{job_id} is a dry run: run it for real instead.")
    return _transition(rt, job_id, allowed, action, actor_id, actor_name,
                       "Migration #{id} is {status}; it cannot be " + words + " now.", **values)


def update_credentials(rt: Runtime, job_id: int, *, source_password: str | None, dest_password: str | None,
                       actor_id: str, actor_name: str = "") -> MigrationJob:
    """Replace either password (None: keep it; "" for the destination: use a temporary app
    password from now on). Not while the job runs."""
    redact(source_password, dest_password)
    with session_scope(rt.database_url) as session:
        job = session.get(MigrationJob, job_id, with_for_update=True)
        if job is None:
            raise MigrationError(f"There is no migration #{job_id}.")
        if job.status == JobState.RUNNING:
            raise MigrationError(f"Migration #{job_id} is running; cancel it first.")
        try:
            current = credentials(rt, job)
        except crypto.CredentialsUnreadable:
            current = {}
        new = {"source": source_password or current.get("source"),
               "dest": dest_password if dest_password is not None else current.get("dest", "")}
        if not new["source"] and job.source_auth == "password":
            raise MigrationError("The old credentials are gone: give the source password.")
        new["source"] = new["source"] or ""
        _store_credentials(rt, job, new)  # type: ignore[arg-type]
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="migration.credentials",
                     target=f"#{job_id}", params={"source": source_password is not None,
                                                  "dest": {None: "kept", "": "temporary app password"}.get(
                                                      dest_password, "changed")})
        session.flush()
        session.expunge(job)
        return job


def delete_job(rt: Runtime, job_id: int, *, actor_id: str, actor_name: str = "") -> bool:
    """Delete a job that is not running, purging its credentials with it. Its temporary app
    password (if a run left one) becomes a tombstone in the same transaction, then is deleted
    at PurelyMail; if PurelyMail cannot do that now, the reconciler does it later: nothing
    valid outlives a deleted job. False: that app password is still valid at PurelyMail
    (it did not answer), to be deleted by the reconciler."""
    with session_scope(rt.database_url) as session:
        job = session.get(MigrationJob, job_id, with_for_update=True)
        if job is None:
            raise MigrationError(f"There is no migration #{job_id}.")
        if job.status == "running":
            raise MigrationError(f"Migration #{job_id} is running; cancel it first.")
        tombstone = _bury(session, job)
        session.delete(job)
        audit.record(session, actor_id=actor_id, actor_name=actor_name, action="migration.delete", target=f"#{job_id}")
    return tombstone is None or delete_tombstones(rt, [tombstone]) == 0


def purge_old_credentials(rt: Runtime, now: datetime | None = None) -> int:
    """Delete the ciphertext of every job that ended more than CREDENTIAL_RETENTION_DAYS
    ago, however it ended (an interrupted job's end is when it was last started)."""
    when = now if now is not None else func.now()  # the database's clock, as every other time of a job
    cutoff = when - timedelta(days=rt.settings.credential_retention_days)
    ended_at = func.coalesce(MigrationJob.finished_at, MigrationJob.started_at, MigrationJob.created_at)
    with session_scope(rt.database_url) as session:
        purged = session.execute(update(MigrationJob).where(
            MigrationJob.ciphertext.is_not(None), MigrationJob.status.in_(ENDED), ended_at < cutoff,
        ).values(ciphertext=None, key_id=None, credentials_purged_at=when))
        return purged.rowcount


# ---- batches ----------------------------------------------------------------------------------


def create_batch(rt: Runtime, name: str, server_id: int, specs: list[JobSpec], *, actor_id: str, actor_name: str,
                 channel_id: str, idempotency_key: str,
                 claim: Callable[[Session, list[MigrationJob]], None] | None = None,
                 ) -> tuple[MigrationBatch, list[MigrationJob], bool]:
    """Every job of a CSV in one transaction (all or nothing), or the batch already made
    for this key. `claim`, called in that transaction with the new jobs, marks what they
    were made from as taken (raising if another took it first: then nothing is made)."""
    for spec in specs:
        redact(spec.source_password, spec.dest_password)
    with session_scope(rt.database_url) as session:
        existing = session.scalars(
            select(MigrationBatch).where(MigrationBatch.idempotency_key == idempotency_key)).first()
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
                               source_provider=server.provider, source_auth=server.auth,
                               source_email=spec.source_email,
                               dest_email=spec.dest_email, dry_run=spec.dry_run,
                               exclude=spec.exclude, max_age_days=spec.max_age_days,
                               status="queued", channel_id=channel_id, created_by=actor_id,
                               idempotency_key=f"{idempotency_key[:48]}-{n}", attempts=0, msgs_done=0,
                               msgs_total=0, bytes_done=0, bytes_total=0)
            session.add(job)
            jobs.append((job, spec))
        session.flush()
        for job, spec in jobs:
            _store_credentials(rt, job, {"source": spec.source_password, "dest": spec.dest_password})
        if claim is not None:
            claim(session, [job for job, _ in jobs])
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


def batch_action(rt: Runtime, batch_id: int, action: str, *, actor_id: str,
                 actor_name: str = "") -> tuple[str, list[int]]:
    """"run_all" (finished dry runs for real), "cancel_all" or "rerun_failed": words, and
    the ids to put on the queue."""
    _, jobs = batch_jobs(rt, batch_id)
    touched: list[int] = []
    for job in jobs:
        try:
            if action == "run_all" and job.status == "done" and job.dry_run:
                touched.append(requeue(rt, job.id, actor_id=actor_id, actor_name=actor_name, dry_run=False).id)
            elif action == "cancel_all" and job.status in (JobState.QUEUED, JobState.RUNNING):
                cancel_job(rt, job.id, actor_id=actor_id, actor_name=actor_name)
                touched.append(job.id)
            elif action == "rerun_failed" and job.status in ("failed", "interrupted", "cancelled", "incomplete"):
                touched.append(requeue(rt, job.id, actor_id=actor_id, actor_name=actor_name).id)
        except MigrationError:
            continue  # it moved meanwhile (a double click); the others still go
    words = {"run_all": "queued for real", "cancel_all": "cancelled or stopping",
             "rerun_failed": "queued again"}[action]
    return f"{len(touched)} migration(s) of the batch {words}.", ([] if action == "cancel_all" else touched)


# ---- the queue ----------------------------------------------------------------------------------

PENDING = ("queued", "started", "scheduled", "deferred")  # RQ's states of a job still to run


def rq_job_id(job_id: int) -> str:
    return f"migration-{job_id}"


def enqueue(rt: Runtime, job_id: int, *, replace_dead: bool = False) -> bool:
    """Put the job on the migrations queue unless it is already there (or running).
    `replace_dead`: its last RQ job belonged to a runner that is gone; drop it."""
    q = Queue(QUEUE, connection=rt.redis)
    old = q.fetch_job(rq_job_id(job_id))
    if old is not None:
        if old.get_status(refresh=False) in PENDING and not replace_dead:
            return False
        try:
            old.delete()
        except (KeyError, ValueError):
            # RQ's record of an execution of it was cut short (its worker wrote a heartbeat as it
            # ended) or expired first: RQ cannot read it back to delete it. Its keys go here.
            executions = [Execution(as_text(eid), old.id, rt.redis).key
                          for eid in rt.redis.zrange(old.execution_registry.key, 0, -1)]
            rt.redis.delete(old.key, old.dependents_key, old.dependencies_key, old.execution_registry.key,
                            *executions)
    q.enqueue(RUN_JOB, job_id, job_id=rq_job_id(job_id), job_timeout=-1, result_ttl=600,
              failure_ttl=24 * 3600, description=f"migration #{job_id}")
    return True


def _due():
    """Not waiting for an automatic retry any more, by the database's clock."""
    return or_(MigrationJob.retry_at.is_(None), MigrationJob.retry_at <= func.now())


def enqueue_waiting(rt: Runtime, limit: int | None = 50) -> int:
    """Queue the jobs that wait for a free slot or mailbox (after one ended), and the
    automatic retries that are due; `limit` None: every one (the reconciler, after Redis
    lost its queues: a batch alone can hold 2,000 jobs)."""
    with session_scope(rt.database_url) as session:
        ids = list(session.scalars(select(MigrationJob.id).where(
            MigrationJob.status == JobState.QUEUED, _due()).order_by(MigrationJob.id).limit(limit)))
    return sum(enqueue(rt, job_id) for job_id in ids)


# ---- the lease a runner holds -------------------------------------------------------------------

# KEYS: the lease key. ARGV: token, ttl ms. 1: renewed; 0: not ours any more.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: the lease key. ARGV: token. Deletes it only if it is ours.
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Lease:
    """A runner's hold on a running job: `token` is in the row and in a Redis key that
    expires MIGRATION_HEARTBEAT seconds after the last renewal."""

    job_id: int
    token: str
    host: str


def _drop_lease(rt: Runtime, lease: Lease) -> None:
    rt.redis.eval(_DROP, 1, LEASE_KEY.format(lease.job_id), lease.token)
    slots.release(rt, lease.job_id, lease.host)


def claim(rt: Runtime, job_id: int) -> tuple[MigrationJob, Lease] | str:
    """queued → running for one runner, with its lease; or why not, in words ("waiting: …"
    when it must wait for a slot or for another job into the same mailbox; "not queued"
    when it is not this runner's to run). Times are the database's."""
    with session_scope(rt.database_url) as session:
        row = session.execute(select(MigrationJob.status, MigrationJob.source_host,
                                     (MigrationJob.retry_at > func.now()).label("early"))
                              .where(MigrationJob.id == job_id)).one_or_none()
    if row is None or row.status != JobState.QUEUED:
        return "not queued"
    if row.early:
        return "not due"  # an automatic retry, queued again when it is due
    heartbeat = rt.settings.migration_heartbeat
    lease = Lease(job_id, str(uuid.uuid4()), row.source_host)
    if not rt.redis.set(LEASE_KEY.format(job_id), lease.token, nx=True, px=int(heartbeat * 1000)):
        return "not queued"  # another runner still holds it
    try:
        waiting = slots.acquire(rt, job_id, row.source_host, heartbeat)
        if waiting:
            rt.redis.eval(_DROP, 1, LEASE_KEY.format(job_id), lease.token)
            return waiting
        try:
            with session_scope(rt.database_url) as session:
                claimed = session.scalars(
                    update(MigrationJob).where(MigrationJob.id == job_id, MigrationJob.status == JobState.QUEUED,
                                               _due())
                    .values(status=JobState.RUNNING, lease=lease.token, attempts=MigrationJob.attempts + 1,
                            started_at=func.now(), cancel_requested_by=None, verdict=None)
                    .returning(MigrationJob)).one_or_none()
                if claimed is not None:
                    session.flush()
                    session.expunge(claimed)
        except IntegrityError:  # another job is running into the same mailbox
            _drop_lease(rt, lease)
            with session_scope(rt.database_url) as session:
                dest_email = session.scalar(select(MigrationJob.dest_email).where(MigrationJob.id == job_id))
            other = _running_into(rt, dest_email or "")
            return (f"waiting: migration #{other} is copying into {dest_email} right now; this one starts "
                    "when it ends (two copies into one mailbox at once would duplicate mail)")
        if claimed is None:
            _drop_lease(rt, lease)
            return "not queued"
        return claimed, lease
    except BaseException:
        _drop_lease(rt, lease)
        raise


def _running_into(rt: Runtime, dest_email: str) -> int | None:
    with session_scope(rt.database_url) as session:
        return session.scalars(select(MigrationJob.id).where(
            func.lower(MigrationJob.dest_email) == dest_email.lower(),
            MigrationJob.status == JobState.RUNNING)).first()


def renew(rt: Runtime, lease: Lease) -> bool:
    """Extend the lease (and the job's slots) by MIGRATION_HEARTBEAT; False once it is not
    ours. Redis alone: the fence never waits for PostgreSQL."""
    heartbeat = rt.settings.migration_heartbeat
    if not rt.redis.eval(_RENEW, 1, LEASE_KEY.format(lease.job_id), lease.token, int(heartbeat * 1000)):
        return False
    slots.acquire(rt, lease.job_id, lease.host, heartbeat)
    return True


def lease_state(rt: Runtime, lease: Lease) -> tuple[bool, str | None]:
    """(the row still names this lease, who asked to cancel the job if anyone did)."""
    with session_scope(rt.database_url) as session:
        row = session.execute(select(MigrationJob.lease, MigrationJob.cancel_requested_by)
                              .where(MigrationJob.id == lease.job_id)).one_or_none()
    if row is None:
        return False, None
    return row.lease == lease.token, row.cancel_requested_by


def save(rt: Runtime, lease: Lease, /, **values: object) -> MigrationJob | None:
    """Write the runner's news to the row, only while it holds the lease (None: it does not)."""
    with session_scope(rt.database_url) as session:
        return _write_fenced(session, lease, values)


def _write_fenced(session: Session, lease: Lease, values: dict[str, object]) -> MigrationJob | None:
    """UPDATE the runner's row only while it names the runner's lease, RETURNING it (detached);
    None when the lease is no longer in the row."""
    job = session.scalars(update(MigrationJob)
                          .where(MigrationJob.id == lease.job_id, MigrationJob.lease == lease.token)
                          .values(**values).returning(MigrationJob)).one_or_none()
    if job is not None:
        session.flush()
        session.expunge(job)
    return job


def patiently(what: str, call: Callable[[], object]) -> object:
    """`call()` until PostgreSQL answers: a write that must not be lost waits out an outage
    (the write itself stays fenced by its token)."""
    wait = 0.5
    while True:
        try:
            return call()
        except (OperationalError, InterfaceError) as error:
            log.warning("PostgreSQL did not answer (%s: %s); trying again in %.1f s", what,
                        type(error.orig or error).__name__, wait)
            time.sleep(wait)
            wait = min(wait * 2, 15.0)


def cancelled_words(actor: str) -> str:
    return f"cancelled by <@{actor}>; what was copied stays, and a re-run resumes"


def end_run(rt: Runtime, lease: Lease, state: JobState, *, retry_in: int | None = None,
            **values: object) -> MigrationJob | None:
    """The run's last write, fenced by its token, in one transaction that locks the row, and
    its lease let go. `state` is how the run ended; with `retry_in` (a server could not be
    reached) the job is queued again after that many seconds; an interruption with re-runs
    left (MAX_INTERRUPTIONS since the admin's last action) is queued again at once. A Cancel
    that reached the row before this write wins over every end but done: the job ends
    cancelled and nothing is queued. None: the lease was lost first (whoever took the job
    records its end). Times are the database's. The credentials stay, encrypted, until
    CREDENTIAL_RETENTION_DAYS after the end (a done job can be synced again on the day the
    MX records change)."""
    with session_scope(rt.database_url) as session:
        row = session.execute(select(MigrationJob.cancel_requested_by, MigrationJob.interruptions,
                                     MigrationJob.ciphertext.is_not(None).label("has_credentials"))
                              .where(MigrationJob.id == lease.job_id, MigrationJob.lease == lease.token)
                              .with_for_update()).one_or_none()
        if row is None:
            job = None
        else:
            values.update(lease=None, cancel_requested_by=None)
            if row.cancel_requested_by and state != JobState.DONE:
                state, retry_in = JobState.CANCELLED, None
                values["verdict"] = cancelled_words(row.cancel_requested_by)
            if state == JobState.INTERRUPTED:
                values["interruptions"] = row.interruptions + 1
                if row.interruptions < MAX_INTERRUPTIONS and row.has_credentials:
                    state, retry_in = JobState.QUEUED, 0
            if retry_in is not None:
                values.update(status=JobState.QUEUED, finished_at=None,
                              retry_at=func.now() + timedelta(seconds=retry_in) if retry_in else None)
                if state != JobState.QUEUED:  # a scheduled retry (not an interruption) counts as one
                    values["retries"] = MigrationJob.retries + 1
            else:
                values.update(status=state, finished_at=func.now(), retry_at=None)
            job = _write_fenced(session, lease, values)
    _drop_lease(rt, lease)
    return job


# ---- temporary app passwords --------------------------------------------------------------------
#
# Each has one owner: the run that made it (its lease token, stored beside it). It is deleted
# only after a conditional update proves it is still that run's (or that the run is over): the
# update moves it into a tombstone row in the same transaction, and the tombstone is deleted at
# PurelyMail. NotFound ("App password does not exist", "no such user") means already gone.


def _app_password_aad(job_id: int) -> str:
    return f"migration-app-password:{job_id}"


def _bury(session, job: MigrationJob) -> int | None:
    """Move the job's app password (the row is locked by the caller) into a tombstone; its id."""
    if job.app_password is None or job.app_password_key_id is None:
        return None
    tombstone = AppPasswordTombstone(job_id=job.id, dest_email=job.dest_email, key_id=job.app_password_key_id,
                                     ciphertext=job.app_password)
    session.add(tombstone)
    job.app_password = job.app_password_key_id = job.app_password_lease = None
    session.flush()
    return tombstone.id


def _bury_where(rt: Runtime, job_id: int, *conditions) -> int | None:
    """In one transaction: lock the job's row if it meets `conditions` and holds an app
    password, move that into a tombstone, and prove it with UPDATE … RETURNING."""
    with session_scope(rt.database_url) as session:
        job = session.scalars(select(MigrationJob).where(
            MigrationJob.id == job_id, MigrationJob.app_password.is_not(None), *conditions)
            .with_for_update()).one_or_none()
        if job is None:
            return None
        return _bury(session, job)


def make_app_password(rt: Runtime, lease: Lease, job: MigrationJob) -> str | None:
    """A temporary app password for this run of `job`, stored (encrypted, with this run's
    token as its owner) the moment it exists. One an earlier run left is buried and deleted
    first; failing to delete it never fails this run (the reconciler tries again). None when
    the lease was lost meanwhile (the new password is deleted again)."""
    earlier = _bury_where(rt, job.id, MigrationJob.lease == lease.token,
                          MigrationJob.app_password_lease.is_distinct_from(lease.token))
    if earlier is not None:
        delete_tombstones(rt, [earlier])
    password = rt.purelymail.create_app_password(job.dest_email, f"purelyops migration #{job.id}")
    redact(password)
    if not keep_app_password(rt, lease, password):
        try:
            rt.purelymail.delete_app_password(job.dest_email, password)
        except NotFound:
            pass
        return None
    return password


def keep_app_password(rt: Runtime, lease: Lease, password: str) -> bool:
    """Store a temporary app password (encrypted) the moment it exists, owned by this run,
    so that it can be deleted even if this runner dies before it does."""
    key_id, blob = crypto.encrypt(rt.settings.credential_keys, {"password": password}, _app_password_aad(lease.job_id))
    return save(rt, lease, app_password_key_id=key_id, app_password=blob, app_password_lease=lease.token) is not None


def release_app_password(rt: Runtime, lease: Lease) -> None:
    """This run's own app password, deleted: buried only if the row still says it is this
    run's (an app password of a later run is never touched), then deleted at PurelyMail. A
    PurelyMail failure leaves the tombstone for the reconciler; never raises for it."""
    tombstone = _bury_where(rt, lease.job_id, MigrationJob.app_password_lease == lease.token)
    if tombstone is not None:
        delete_tombstones(rt, [tombstone])


def leftover_app_passwords(rt: Runtime) -> list[int]:
    """Bury the app passwords whose run is over (the job is not running under the token
    that owns them); the tombstones' ids, for delete_tombstones."""
    run_over = or_(MigrationJob.status != JobState.RUNNING,
                   MigrationJob.lease.is_distinct_from(MigrationJob.app_password_lease))
    with session_scope(rt.database_url) as session:
        rows = session.execute(select(MigrationJob.id, MigrationJob.app_password_lease).where(
            MigrationJob.app_password.is_not(None), run_over)).all()
    buried = []
    for job_id, owner in rows:  # each again under its row's lock: still that owner's, still over
        tombstone = _bury_where(rt, job_id, MigrationJob.app_password_lease.is_not_distinct_from(owner), run_over)
        if tombstone is not None:
            buried.append(tombstone)
    return buried


def delete_tombstones(rt: Runtime, ids: list[int] | None = None) -> int:
    """Delete buried app passwords at PurelyMail (`ids`, or every one): NotFound counts as
    deleted; another failure keeps the tombstone for the next reconcile (said in the log).
    How many are left."""
    with session_scope(rt.database_url) as session:
        query = select(AppPasswordTombstone).order_by(AppPasswordTombstone.id)
        if ids is not None:
            query = query.where(AppPasswordTombstone.id.in_(ids))
        tombstones = list(session.scalars(query))
        session.expunge_all()
    left = 0
    for tombstone in tombstones:
        try:
            password = crypto.decrypt(rt.settings.credential_keys, tombstone.key_id, tombstone.ciphertext,
                                      _app_password_aad(tombstone.job_id))["password"]
        except crypto.CredentialsUnreadable:
            password = None  # its key is gone (CREDENTIALS_KEY rotated without it): nothing can be done with it
            log.warning("the temporary app password of migration #%s cannot be decrypted any more (its key is no "
                        "longer in CREDENTIALS_KEY), so purelyops cannot delete it: delete the app passwords of %s "
                        "at PurelyMail by hand", tombstone.job_id, tombstone.dest_email)
        error: str | None = None
        if password is not None:
            redact(password)
            try:
                rt.purelymail.delete_app_password(tombstone.dest_email, password)
            except NotFound:
                pass  # already gone (a lost answer, a deleted mailbox): just as good
            except PurelyMailError as failure:
                error = str(failure)
        with session_scope(rt.database_url) as session:
            if error is None:
                session.execute(delete(AppPasswordTombstone).where(AppPasswordTombstone.id == tombstone.id))
            else:
                left += 1
                log.warning("deleting the temporary app password of migration #%s failed (tried again later): %s",
                            tombstone.job_id, error)
                session.execute(update(AppPasswordTombstone).where(AppPasswordTombstone.id == tombstone.id)
                                .values(tries=AppPasswordTombstone.tries + 1, last_error=error))
    return left


def tombstones_of(rt: Runtime, dest_email: str) -> int:
    """How many buried app passwords of this mailbox are still to be deleted."""
    with session_scope(rt.database_url) as session:
        return session.scalar(select(func.count()).select_from(AppPasswordTombstone).where(
            func.lower(AppPasswordTombstone.dest_email) == dest_email.lower())) or 0


# ---- runners that went silent -------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciled:
    job: MigrationJob
    note: str


def take_back_silent(rt: Runtime) -> list[Reconciled]:
    """Every running job whose lease expired (its runner died or stopped itself): queued
    again while it has re-runs left, else interrupted; cancelled if a Cancel was waiting for
    it. Each move locks the row and is conditional on the lease seen, so it happens once,
    and reads the Cancel in the same transaction, so a Cancel is never erased. The dead
    run's app password is buried in that transaction and deleted before the job is queued."""
    taken: list[Reconciled] = []
    for seen in list_jobs(rt, JobState.RUNNING, limit=None):
        if rt.redis.exists(LEASE_KEY.format(seen.id)):
            continue
        with session_scope(rt.database_url) as session:
            job = session.scalars(select(MigrationJob).where(
                MigrationJob.id == seen.id, MigrationJob.status == JobState.RUNNING,
                MigrationJob.lease.is_not_distinct_from(seen.lease)).with_for_update()).one_or_none()
            if job is None:
                continue
            if job.cancel_requested_by:
                state, note = JobState.CANCELLED, f"cancelled by <@{job.cancel_requested_by}> while its runner stopped"
                extra: dict[str, object] = {"finished_at": func.now(), "verdict": note}
            elif job.interruptions < MAX_INTERRUPTIONS and job.ciphertext is not None:
                state = JobState.QUEUED
                note = (f"the worker running it stopped (interruption {job.interruptions + 1}; re-run by itself up "
                        f"to {MAX_INTERRUPTIONS} times); re-running it: imapsync skips what it already copied")
                extra = {"finished_at": None, "verdict": None, "interruptions": job.interruptions + 1}
            else:
                state = JobState.INTERRUPTED
                note = (f"the worker running it stopped (interruption {job.interruptions + 1}, after "
                        f"{MAX_INTERRUPTIONS} automatic re-runs); not re-run again automatically: use Re-run when "
                        "the cause is fixed")
                extra = {"finished_at": func.now(), "verdict": f"interrupted: {note}",
                         "interruptions": job.interruptions + 1}
            buried = _bury(session, job) if job.app_password_lease in (None, job.lease) else None
            moved = session.scalars(update(MigrationJob).where(
                MigrationJob.id == job.id, MigrationJob.lease.is_not_distinct_from(seen.lease),
            ).values(status=state, lease=None, cancel_requested_by=None, **extra)
             .returning(MigrationJob)).one()
            session.flush()
            session.expunge(moved)
        if buried is not None:
            delete_tombstones(rt, [buried])
        slots.release(rt, seen.id, seen.source_host)
        if state == JobState.QUEUED:
            enqueue(rt, seen.id, replace_dead=True)
        taken.append(Reconciled(moved, note))
    return taken
