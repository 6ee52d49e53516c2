"""Job: run one migration with imapsync, and tell its Slack thread how it goes.

The worker decrypts the job's credentials and writes them to 0600 files in a private
0700 directory, passed to imapsync as absolute --passfile paths (never in argv). It runs
imapsync in a process group of its own, reads its output line by line through
ImapsyncOutput, and updates one status message in the thread at most every
MIGRATION_PROGRESS_INTERVAL seconds and at milestones. Cancel sends SIGTERM to the
group and SIGKILL after MIGRATION_KILL_GRACE seconds: no imapsync is left behind. At the
end the thread gets a summary, the verdict in words, and the whole log with secrets masked.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import datetime, timezone

from rq import get_current_job
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.blocks.migrations import batch_blocks, status_blocks, summary_blocks, title
from db.models import MigrationJob
from db.session import session_scope
from purelyops import migrations, slots
from purelyops.crypto import CredentialsUnreadable
from purelyops.failures import describe_failure
from purelyops.logs import MASK, redact
from purelyops.purelymail import PurelyMailError
from purelyops.runtime import Runtime
from workers.imapsync_output import ImapsyncOutput, verdict
from workers.queues import MIGRATIONS, job_runtime
from workers.queues import queue as rq_queue

log = logging.getLogger(__name__)
MAX_LOG_BYTES = 20 * 2**20
POLL_SECONDS = 0.2
MIN_UPDATE_GAP = 3.0  # one update of a job's message every 3 s at most, whatever happens


ALIVE_KEY = "purelyops:migration:alive:{}"
MAX_ATTEMPTS = 3
PENDING = ("queued", "started", "scheduled", "deferred")


def rq_job_id(job_id: int) -> str:
    return f"migration-{job_id}"


def enqueue(rt: Runtime, job_id: int, *, replace_dead: bool = False) -> bool:
    """Put the job on the migrations queue unless it is already there (or running).
    `replace_dead`: its last RQ job belonged to a worker that died; drop it."""
    q = rq_queue(rt, MIGRATIONS)
    old = q.fetch_job(rq_job_id(job_id))
    if old is not None:
        if old.get_status(refresh=False) in PENDING and not replace_dead:
            return False
        old.delete()
    q.enqueue(run_migration, job_id, job_id=rq_job_id(job_id), job_timeout=-1, result_ttl=600,
              failure_ttl=24 * 3600, description=f"migration #{job_id}")
    return True


def run_credential_purge() -> int:
    return migrations.purge_old_credentials(job_runtime())


def run_reconcile() -> dict:
    return reconcile(job_runtime())


def reconcile(rt: Runtime) -> dict:
    """PostgreSQL says what should be happening; make Redis agree. A running job whose
    runner has gone silent (its worker died) becomes interrupted, is announced in its
    thread and re-run, up to MAX_ATTEMPTS runs in all. Every queued job is on the queue
    (after Redis lost its data, for example)."""
    interrupted = requeued = 0
    for job in migrations.list_jobs(rt, "running", limit=1000):
        if rt.redis.exists(ALIVE_KEY.format(job.id)):
            continue
        retry = job.attempts < MAX_ATTEMPTS
        note = (f"the worker running it stopped (attempt {job.attempts} of {MAX_ATTEMPTS}); "
                + ("re-running it: imapsync skips what it already copied" if retry
                   else "not re-run again automatically: use Re-run when the cause is fixed"))
        with session_scope(rt.database_url) as session:
            row = session.get(MigrationJob, job.id, with_for_update=True)
            if row is None or row.status != "running":
                continue
            row.status = "queued" if retry else "interrupted"
            row.verdict = None if retry else f"interrupted: {note}"
            session.flush()
            session.expunge(row)
        interrupted += 1
        slots.release(rt, job.id, job.source_host)
        if retry:
            requeued += enqueue(rt, job.id, replace_dead=True)
        announcer = Runner(rt, job.id)
        announcer.post(row, f"Migration #{job.id} was interrupted: {note}.")
        announcer.status(row, note=f"interrupted: {note}", force=True)
    for job in migrations.list_jobs(rt, "queued", limit=1000):
        requeued += enqueue(rt, job.id)
    return {"interrupted": interrupted, "enqueued": requeued}


def start(rt: Runtime, job: MigrationJob) -> None:
    """Post the thread's first message ("… queued"), then queue the job."""
    try:
        posted = rt.slack.chat_postMessage(channel=job.channel_id, text=f"{title(job)} queued",
                                           blocks=status_blocks(job)[1])
        migrations.remember_thread(rt, job.id, posted["ts"])
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not post migration #%s: %s", job.id, error)
    enqueue(rt, job.id)


def start_batch(rt: Runtime, batch_id: int) -> None:
    """Post the batch message (the thread of every job in it), then queue its jobs."""
    batch, jobs = migrations.batch_jobs(rt, batch_id)
    try:
        text, blocks = batch_blocks(batch, jobs)
        posted = rt.slack.chat_postMessage(channel=batch.channel_id, text=text, blocks=blocks)
        migrations.remember_batch_message(rt, batch.id, posted["ts"])
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not post batch %s: %s", batch.id, error)
    for job in jobs:
        enqueue(rt, job.id)


def refresh_batch(rt: Runtime, batch_id: int) -> None:
    batch, jobs = migrations.batch_jobs(rt, batch_id)
    if batch.message_ts:
        text, blocks = batch_blocks(batch, jobs)
        try:
            rt.slack.chat_update(channel=batch.channel_id, ts=batch.message_ts, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError) as error:
            log.warning("could not update batch %s: %s", batch.id, error)


def run_migration(job_id: int) -> str:
    return Runner(job_runtime(), job_id).run()


def imapsync_argv(rt: Runtime, job: MigrationJob, passfile1: str, passfile2: str) -> list[str]:
    """Every value as --option=value, so that none can be read as an option of its own."""
    s = rt.settings
    argv = [s.imapsync_bin,
            f"--host1={job.source_host}", f"--port1={job.source_port}", f"--user1={job.source_email}",
            f"--passfile1={passfile1}",
            f"--host2={s.purelymail_imap_host}", f"--port2={s.purelymail_imap_port}", f"--user2={job.dest_email}",
            f"--passfile2={passfile2}", "--nolog", "--noreleasecheck"]
    if s.purelymail_imap_tls:
        argv.append("--ssl2")
    argv += {"tls": ["--ssl1"], "starttls": ["--tls1"], "none": []}[job.source_security]
    if job.dry_run:
        argv.append("--dry")
    if job.exclude:
        argv.append(f"--exclude={job.exclude}")
    if job.max_age_days:
        argv.append(f"--maxage={job.max_age_days}")
    return argv


def _die_with_parent() -> None:
    """In the child, before imapsync starts: if the worker dies (even by SIGKILL), the
    kernel kills imapsync too (Linux), so no copy goes on with nobody watching it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Runner:
    def __init__(self, rt: Runtime, job_id: int) -> None:
        self.rt = rt
        self.job_id = job_id
        self.output = ImapsyncOutput()
        self.log_lines: list[str] = []
        self.log_bytes = 0
        self.secrets: list[str] = []
        self.last_update = 0.0
        self.last_beat = 0.0
        self.host = ""

    # ---- limits and liveness --------------------------------------------------------------

    def _take_slot(self) -> str | None:
        """None when this job may run now; else it stays queued (the reconciler queues it again)."""
        try:
            job = migrations.get_job(self.rt, self.job_id)
        except migrations.MigrationError:
            return "gone"
        if job.status != "queued":
            return "not queued"
        self.host = job.source_host
        waiting = slots.acquire(self.rt, job.id, job.source_host, self.rt.settings.migration_heartbeat)
        if waiting:
            self.status(job, waiting, force=True)
        return waiting

    def _heartbeat(self, job: MigrationJob, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_beat >= self.rt.settings.migration_heartbeat / 3:
            self.last_beat = now
            self.rt.redis.set(ALIVE_KEY.format(job.id), 1, ex=max(1, int(self.rt.settings.migration_heartbeat)))
            slots.acquire(self.rt, job.id, job.source_host, self.rt.settings.migration_heartbeat)

    # ---- the job row ----------------------------------------------------------------------

    def _claim(self) -> MigrationJob | None:
        """queued → running, once; anything else means someone else has it or it was cancelled."""
        with session_scope(self.rt.database_url) as session:
            job = session.get(MigrationJob, self.job_id, with_for_update=True)
            if job is None or job.status != "queued":
                return None
            job.status, job.attempts, job.started_at = "running", job.attempts + 1, datetime.now(timezone.utc)
            session.flush()
            session.expunge(job)
            return job

    def _save(self, **values: object) -> MigrationJob:
        with session_scope(self.rt.database_url) as session:
            job = session.get(MigrationJob, self.job_id)
            for key, value in values.items():
                setattr(job, key, value)
            session.flush()
            session.expunge(job)
            return job

    # ---- Slack ----------------------------------------------------------------------------

    def status(self, job: MigrationJob, note: str = "", force: bool = False, final: bool = False) -> None:
        """Update the status message: every MIGRATION_PROGRESS_INTERVAL seconds, and at
        milestones (`force`), but never twice within MIN_UPDATE_GAP seconds: a milestone
        that comes too soon is left to the next update, and the final one waits its turn."""
        interval = self.rt.settings.migration_progress_interval
        gap = time.monotonic() - self.last_update
        min_gap = min(MIN_UPDATE_GAP, interval)
        if gap < min_gap:
            if not final:
                return
            time.sleep(min_gap - gap)
        elif not (force or final) and gap < interval:
            return
        self.last_update = time.monotonic()
        self._meta()
        if job.batch_id is not None:  # one message for the whole batch, not one per mailbox
            self._save(msgs_done=self.output.progress.msgs_done, msgs_total=self.output.progress.msgs_total)
            refresh_batch(self.rt, job.batch_id)
            return
        text, blocks = status_blocks(job, self.output.progress, note)
        try:
            if job.status_ts:
                self.rt.slack.chat_update(channel=job.channel_id, ts=job.status_ts, text=text, blocks=blocks)
            elif job.thread_ts:
                posted = self.rt.slack.chat_postMessage(channel=job.channel_id, thread_ts=job.thread_ts, text=text,
                                                        blocks=blocks)
                job.status_ts = posted["ts"]
                self._save(status_ts=job.status_ts)
        except (SlackApiError, SlackClientError) as error:
            log.warning("could not update migration #%s in Slack: %s", job.id, error)
        self.last_update = time.monotonic()  # from delivery: a call held up by 429s does not shorten the gap

    def _meta(self) -> None:
        """The progress in the RQ job's meta too, for RQ's own tools (rq info, dashboards)."""
        current = get_current_job()
        if current is not None:
            p = self.output.progress
            current.meta.update(msgs_done=p.msgs_done, msgs_total=p.msgs_total, bytes_done=p.bytes_done,
                                bytes_total=p.bytes_total, folder=p.folder)
            current.save_meta()

    def post(self, job: MigrationJob, text: str, blocks: list[dict] | None = None) -> None:
        try:
            self.rt.slack.chat_postMessage(channel=job.channel_id, thread_ts=job.thread_ts, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError) as error:
            log.warning("could not post to migration #%s's thread: %s", job.id, error)

    def _upload_log(self, job: MigrationJob) -> None:
        content = self._mask("".join(self.log_lines))
        try:
            self.rt.slack.files_upload_v2(channel=job.channel_id, thread_ts=job.thread_ts, content=content,
                                          filename=f"migration-{job.id}.log", title=f"imapsync log of migration #{job.id}")
        except (SlackApiError, SlackClientError) as error:
            log.warning("could not upload the log of migration #%s: %s", job.id, error)

    def _mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    # ---- the run --------------------------------------------------------------------------

    def run(self) -> str:
        waiting = self._take_slot()
        if waiting:
            return waiting
        job = self._claim()
        if job is None:
            slots.release(self.rt, self.job_id, self.host)
            return "not queued"
        started = time.monotonic()
        self._heartbeat(job, force=True)
        self.status(job, "starting", force=True)
        app_password = None
        workdir = tempfile.mkdtemp(prefix="purelyops-migration-")  # 0700
        try:
            secrets = migrations.credentials(self.rt, job)
            source, dest = secrets["source"], secrets["dest"]
            if not dest:
                app_password = dest = self.rt.purelymail.create_app_password(job.dest_email, f"purelyops migration #{job.id}")
                redact(app_password)
            self.secrets = [s for s in (source, dest) if s]
            passfiles = [self._passfile(workdir, name, value) for name, value in (("1", source), ("2", dest))]
            code = self._imapsync(job, imapsync_argv(self.rt, job, *passfiles))
        except (CredentialsUnreadable, PurelyMailError) as error:
            return self._finish(job, None, str(error), started)
        except OSError as error:
            return self._finish(job, None, f"imapsync could not be started ({error.strerror}): check IMAPSYNC_BIN", started)
        except Exception as error:  # noqa: BLE001 - the job must end in a state, whatever happened
            log.exception("migration #%s failed unexpectedly", job.id)
            return self._finish(job, None, describe_failure(error), started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            if app_password:
                try:
                    self.rt.purelymail.delete_app_password(job.dest_email, app_password)
                except PurelyMailError as error:
                    log.warning("could not delete migration #%s's temporary app password: %s", job.id, error)
        return self._finish(job, code, None, started)

    @staticmethod
    def _passfile(workdir: str, name: str, value: str) -> str:
        path = os.path.join(workdir, f"pass{name}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        return path

    def _imapsync(self, job: MigrationJob, argv: list[str]) -> int:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
               "LANG": "C.UTF-8", **{k: v for k, v in os.environ.items() if k.startswith("IMAPSYNC_STANDIN_")}}
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=env, text=True, encoding="utf-8", errors="replace",
                                   preexec_fn=_die_with_parent)
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True, name=f"imapsync-{job.id}").start()
        sized = False
        cancel_at: float | None = None
        eof = False
        while True:
            try:
                line = lines.get(timeout=POLL_SECONDS)
            except queue.Empty:
                line = ""
            if line is None:
                eof = True
            elif line:
                self._keep(line)
                progress = self.output.feed(line)
                if progress is not None and not sized and progress.bytes_total:
                    sized = True  # a milestone: the sizes are known
                    self.status(job, force=True)
                elif progress is not None:
                    self.status(job)
            if eof and process.poll() is not None:
                break
            self._heartbeat(job)
            if cancel_at is None and migrations.cancel_requested(self.rt, job.id):
                cancel_at = time.monotonic()
                self._signal(process, signal.SIGTERM)
            if cancel_at is not None and time.monotonic() - cancel_at > self.rt.settings.migration_kill_grace:
                self._signal(process, signal.SIGKILL)
                cancel_at = float("inf")
            if eof and process.poll() is None:
                time.sleep(POLL_SECONDS)
        self._signal(process, signal.SIGKILL)  # whatever it left in its group
        return process.returncode

    @staticmethod
    def _signal(process: subprocess.Popen, signum: int) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass

    def _keep(self, line: str) -> None:
        if self.log_bytes < MAX_LOG_BYTES:
            self.log_lines.append(line)
            self.log_bytes += len(line)

    def _finish(self, job: MigrationJob, code: int | None, problem: str | None, started: float) -> str:
        summary = self.output.summary()
        progress = self.output.progress
        cancelled_by = migrations.cancel_requested(self.rt, job.id)
        if problem:
            status, words = "failed", problem
        elif cancelled_by:
            status, words = "cancelled", f"cancelled by <@{cancelled_by}>; what was copied stays, and a re-run resumes"
        else:
            status = "done" if code == 0 else "failed"
            words = verdict(code if code is not None else -1, summary, source=job.source_email, dest=job.dest_email)
        now = datetime.now(timezone.utc)
        values: dict[str, object] = dict(
            status=status, exit_code=code, verdict=words, finished_at=now, msgs_done=progress.msgs_done,
            msgs_total=progress.msgs_total, bytes_done=progress.bytes_done, bytes_total=progress.bytes_total,
            summary={k: v for k, v in asdict(summary).items() if k != "error_lines"}
            | {"error_lines": [self._mask(line) for line in summary.error_lines]})
        if status == "done" and not job.dry_run:
            values.update(ciphertext=None, key_id=None, credentials_purged_at=now)  # no longer needed
        job = self._save(**values)
        self.rt.redis.delete(migrations.CANCEL_KEY.format(job.id), ALIVE_KEY.format(job.id))
        slots.release(self.rt, job.id, job.source_host)
        self.status(job, final=True)
        summary.error_lines = [self._mask(line) for line in summary.error_lines]
        if job.batch_id is None or status != "done":  # in a batch, only what needs a look gets a post
            self.post(job, *summary_blocks(job, summary, time.monotonic() - started))
            if self.log_lines:
                self._upload_log(job)
        for waiting in migrations.list_jobs(self.rt, "queued", limit=50):  # a slot is free: the next may start
            enqueue(self.rt, waiting.id)
        return status
