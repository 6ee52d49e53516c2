"""Jobs: run one migration with imapsync; take back migrations whose runner went silent;
purge old credentials.

`Runner` claims the job (purelyops.migrations: a lease with a fencing token), then keeps
these apart so that none can hold up another:
- the heartbeat, on a thread of its own, renews the lease in Redis; if it cannot renew in
  time, or the lease is gone, it kills imapsync at once, before anyone else may take the
  job (the fence depends on Redis alone);
- the watcher, on a thread of its own, reads Cancel (and whether the row still names this
  lease) from PostgreSQL; when PostgreSQL is away it waits and catches up;
- the reporter, on a thread of its own, posts progress to Slack (a 429 that makes it
  wait a minute delays a message, nothing else); only while the lease is held;
- the main loop reads imapsync's output and feeds the parser.
Every state write goes through the lease. The end of a run is in one place, `_end`, in a
fixed order (see there): when imapsync's last process has ended, purelyops checks the
destination itself (purelyops.mail_check) before the temporary app password goes, and
purelyops.run_outcome decides from both how the run ended. At the end the thread gets a
summary, the verdict in words, a file of every missing message, and the whole log with
secrets masked.

A source that signs in with a token (purelyops.oauth_tokens) gets a fresh one for each
imapsync; as imapsync reads its token once, the run goes on with a new imapsync and a new
token before the token expires (`_copy_with_tokens`), and the output of all of them is one
run's (`ContinuedOutput`).
"""

from __future__ import annotations

import logging
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from rq import get_current_job

from bot import migration_messages as slack_out
from bot.blocks.migrations import duration
from db.models import MigrationJob
from purelyops import imap_session, imapsync, mail_check, metrics, migration_report, migrations, oauth_tokens, servers
from purelyops.crypto import CredentialsUnreadable
from purelyops.errors import Refused
from purelyops.failures import describe_failure
from purelyops.imap_session import ImapAuth
from purelyops.imapsync_output import ImapsyncOutput, Progress, Summary
from purelyops.logs import MASK
from purelyops.migrations import JobState, Lease
from purelyops.purelymail import PurelyMailError
from purelyops.run_outcome import Outcome, decide, needs_check
from purelyops.runtime import Runtime
from workers.queues import job_runtime

log = logging.getLogger(__name__)
MAX_LOG_BYTES = 20 * 2**20
POLL_SECONDS = 0.2
MIN_UPDATE_GAP = 3.0  # one update of a job's message every 3 s at most, whatever happens
FENCE = 0.6  # a runner that could not renew its lease for this share of MIGRATION_HEARTBEAT stops imapsync
STOPPED_EARLY = (111, 112, 113, 114, 118)  # errors, too many errors, over quota…: no end-of-run folder sizes
TOKEN_PLACEHOLDER = "xoauth2-token-login"  # the source "password" imapsync 2.229 wants beside a token
Side = tuple[imapsync.Endpoint, ImapAuth]  # one end of a run and how to log in there
MAX_UNPRODUCTIVE_CONTINUATIONS = 3  # fresh tokens in a row that copied nothing: the run ends as it is
# A reconnect refused for a dead token: imapsync 2.229 does not end, it offers the same token again for each
# message ("could not be fetched: … NO [AUTHENTICATIONFAILED] Authentication failed." from Dovecot, "NO
# AUTHENTICATE failed." from Exchange Online), every few seconds, for ever. Such a line stops that imapsync.
REFUSED_RECONNECT = re.compile(r"\bNO \[AUTHENTICATIONFAILED\]|\bNO AUTHENTICATE failed", re.IGNORECASE)


def run_migration(job_id: int) -> str:
    return Runner(job_runtime(), job_id).run()


def run_credential_purge() -> int:
    return migrations.purge_old_credentials(job_runtime())


def run_reconcile() -> dict:
    return reconcile(job_runtime())


def reconcile(rt: Runtime) -> dict:
    """PostgreSQL says what should be happening; make Redis and Slack agree: a running job
    whose runner went silent is taken back (queued again, or interrupted) and announced;
    temporary app passwords whose run is over are deleted (and those of deleted jobs, kept
    as tombstones until PurelyMail has deleted them); every queued job is on the queue
    (after Redis lost its data, for example)."""
    taken = migrations.take_back_silent(rt)
    migrations.leftover_app_passwords(rt)
    migrations.delete_tombstones(rt)
    enqueued = sum(item.job.status == JobState.QUEUED for item in taken) + migrations.enqueue_waiting(rt, limit=None)
    for item in taken:  # Slack last: its waits hold up nothing above
        slack_out.post(rt, item.job, f"Migration #{item.job.id} was interrupted: {item.note}.")
        if not _claimed_again(rt, item.job):
            slack_out.show_status(rt, item.job, note=f"interrupted: {item.note}")
    return {"interrupted": len(taken), "enqueued": enqueued}


def _claimed_again(rt: Runtime, job: MigrationJob) -> bool:
    """A new run holds the job now: its status message is that run's to write."""
    try:
        now = migrations.get_job(rt, job.id)
    except migrations.MigrationError:
        return True
    return now.status == JobState.RUNNING or now.attempts != job.attempts


class LeaseLost(Exception):
    """This runner no longer holds the job: it must stop and write nothing."""


class Heartbeat:
    """Two threads. One renews the lease in Redis every beat, and stops imapsync itself
    (SIGKILL) the moment the lease is gone, or once renewing has failed for FENCE of
    MIGRATION_HEARTBEAT: the Redis key outlives that, so nobody else can have claimed the
    job while this imapsync still runs. The fence depends on Redis alone. The other reads
    the row (Cancel, and whether the row still names this lease) from PostgreSQL, also
    every beat; when PostgreSQL is away, that read waits and catches up, and imapsync goes
    on under its Redis lease."""

    def __init__(self, rt: Runtime, lease: Lease) -> None:
        self.rt, self.lease = rt, lease
        self.beat = min(0.5, rt.settings.migration_heartbeat / 4)  # also how soon a Cancel is seen
        self.deadline = rt.settings.migration_heartbeat * FENCE
        self.last_ok = time.monotonic()
        self.lost = threading.Event()
        self.cancelled_by: str | None = None
        self.process: imapsync.ImapsyncProcess | None = None
        self._halt = threading.Event()
        self._threads = [threading.Thread(target=self._renew, daemon=True, name=f"heartbeat-{lease.job_id}"),
                         threading.Thread(target=self._watch, daemon=True, name=f"watch-{lease.job_id}")]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _renew(self) -> None:
        while not self._halt.wait(self.beat):
            try:
                if migrations.renew(self.rt, self.lease):
                    self.last_ok = time.monotonic()
                else:
                    self._lose("its lease was taken")
            except Exception as error:  # noqa: BLE001 - Redis away: the fence decides
                log.warning("migration #%s could not renew its lease: %s", self.lease.job_id, error)
            if time.monotonic() - self.last_ok > self.deadline:
                self._lose("it could not renew its lease in time")

    def _watch(self) -> None:
        while not self._halt.wait(self.beat):
            try:
                held, cancelled_by = migrations.lease_state(self.rt, self.lease)
            except Exception as error:  # noqa: BLE001 - PostgreSQL away: read again, imapsync goes on
                log.warning("migration #%s could not read its row (reading again): %s", self.lease.job_id,
                            type(error).__name__)
                continue
            if self._halt.is_set():
                return
            self.cancelled_by = cancelled_by
            if not held:
                self._lose("its lease was taken")

    def _lose(self, why: str) -> None:
        if not self.lost.is_set():
            log.warning("migration #%s stops: %s", self.lease.job_id, why)
            self.lost.set()
        if self.process is not None:
            self.process.signal(signal.SIGKILL)

    def _not_ours(self) -> bool:
        return self.lost.is_set() or time.monotonic() - self.last_ok > self.deadline

    def check(self) -> None:
        """For the main loop: raise LeaseLost once the job is not ours."""
        if self._not_ours():
            self._lose("it could not renew its lease in time")
            raise LeaseLost

    def gone(self) -> bool:
        """Whether the run should stop what it waits on: cancelled, or no longer ours."""
        return bool(self.cancelled_by) or self._not_ours()

    def stop(self) -> None:
        self._halt.set()


class Reporter(threading.Thread):
    """Posts progress to the job's thread on its own thread: the newest progress every
    MIGRATION_PROGRESS_INTERVAL seconds and at milestones, never two updates within
    MIN_UPDATE_GAP seconds. Slack's waits (429 Retry-After) hold up only this thread.
    Only a run that holds the lease writes the status message (`lost` set: nothing more),
    and its final status goes after its last progress update: one update at a time, and
    none after the final one."""

    def __init__(self, rt: Runtime, job: MigrationJob, lost: threading.Event) -> None:
        super().__init__(daemon=True, name=f"reporter-{job.id}")
        self.rt, self.job, self.lost = rt, job, lost
        self.rq_job = get_current_job()  # taken here: RQ knows it on the work horse's main thread only
        self.interval = rt.settings.migration_progress_interval
        self.gap = min(MIN_UPDATE_GAP, self.interval)
        self._changed = threading.Condition()
        self._latest: tuple[Progress, str] | None = None
        self._urgent = False
        self._closing = False
        self._sending = threading.Lock()  # one update at a time, in order
        self._final = False
        self.last_update = 0.0

    def show(self, progress: Progress, note: str = "", force: bool = False) -> None:
        with self._changed:
            self._latest = (replace(progress), note)
            self._urgent = self._urgent or force
            self._changed.notify()

    def run(self) -> None:
        while True:
            with self._changed:
                while not self._closing:
                    if self._latest is None:
                        self._changed.wait()
                        continue
                    due = (self.gap if self._urgent else self.interval) - (time.monotonic() - self.last_update)
                    if due <= 0:
                        break
                    self._changed.wait(due)  # a milestone (force) may shorten the wait to the gap
                if self._closing:
                    return
                latest, self._latest, self._urgent = self._latest, None, False
            with self._sending:
                if not self._final and not self.lost.is_set():
                    self._send(*latest)

    def _send(self, progress: Progress | None, note: str) -> None:
        job = self.job
        if progress is not None and self.rq_job is not None:  # for RQ's own tools (rq info, dashboards)
            self.rq_job.meta.update(msgs_done=progress.msgs_done, msgs_total=progress.msgs_total,
                                    bytes_done=progress.bytes_done, bytes_total=progress.bytes_total,
                                    folder=progress.folder)
            self.rq_job.save_meta()
        if job.batch_id is not None and progress is not None:  # the batch message shows counts from the rows
            migrations.record_progress(self.rt, job.id, progress.msgs_done, progress.msgs_total)
        ts = slack_out.show_status(self.rt, job, progress, note)
        if ts and ts != job.status_ts:
            job.status_ts = ts
            migrations.remember_status_message(self.rt, job.id, ts)
        self.last_update = time.monotonic()  # from delivery: a call held up by 429s does not shorten the gap

    def _no_more(self) -> None:
        """The thread sends nothing after this; the update under way, if any, is waited for."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._sending.acquire()
        self._final = True

    def stop(self) -> None:
        """No more updates (a run that lost its job)."""
        self._no_more()
        self._sending.release()

    def close(self, job: MigrationJob, progress: Progress | None, note: str = "",
              still_ours: Callable[[], bool] | None = None) -> None:
        """Stop, then show the final state: after the update under way has landed, after the
        gap since the last one, and never followed by another. `still_ours`: asked just
        before; False (a re-run holds the job already) leaves the message to that run."""
        self._no_more()
        try:
            wait = self.gap - (time.monotonic() - self.last_update)
            if wait > 0 and self.last_update:
                time.sleep(wait)
            job.status_ts = job.status_ts or self.job.status_ts
            self.job = job
            if still_ours is None or still_ours():
                self._send(progress, note)
        finally:
            self._sending.release()


class ContinuedOutput(ImapsyncOutput):
    """The output of one run that may take several imapsyncs (each with a fresh token): the
    progress stays one bar over the whole run (the first imapsync's totals; what is left as
    the newest says), and what was copied adds up. The folder sizes and the end are the last
    imapsync's."""

    def __init__(self) -> None:
        super().__init__()
        self._base: dict[str, int] = {"copied": 0, "transferred": 0, "bytes": 0, "errors": 0, "skipped": 0}
        self._earlier_errors: list[str] = []
        self._first: Progress | None = None
        self._bar = Progress()

    def next_segment(self) -> None:
        done = super().summary()
        self._base = {"copied": self._base["copied"] + done.copied,
                      "transferred": self._base["transferred"] + done.transferred,
                      "bytes": self._base["bytes"] + done.bytes_transferred,
                      "errors": self._base["errors"] + done.errors, "skipped": done.skipped}
        self._earlier_errors += [line for line in done.error_lines if line not in self._earlier_errors]
        if self._first is None:
            self._first = replace(super().progress)
        ImapsyncOutput.__init__(self)

    @property
    def progress(self) -> Progress:
        now = super().progress
        bar = self._bar
        first = self._first
        bar.folder, bar.rate_msgs_per_s, bar.eta_seconds, bar.msgs_left = (now.folder, now.rate_msgs_per_s,
                                                                           now.eta_seconds, now.msgs_left)
        bar.bytes_done = self._base["bytes"] + now.bytes_done
        if first is None or not first.msgs_total:
            bar.msgs_total, bar.msgs_done, bar.bytes_total = now.msgs_total, now.msgs_done, now.bytes_total
        else:
            bar.msgs_total, bar.bytes_total = first.msgs_total, first.bytes_total
            bar.msgs_done = first.msgs_total - now.msgs_left if now.msgs_total else first.msgs_total - first.msgs_left
            bar.msgs_done = max(bar.msgs_done, 0)
        return bar

    @property
    def copied(self) -> tuple[int, int]:
        return self._base["copied"] + super().summary().copied, self.progress.bytes_done

    def feed(self, line: str) -> Progress | None:
        return self.progress if super().feed(line) is not None else None

    def summary(self) -> Summary:
        summary = super().summary()
        if self._first is None:
            return summary
        merged = replace(summary, copied=self._base["copied"] + summary.copied,
                         transferred=self._base["transferred"] + summary.transferred,
                         bytes_transferred=self._base["bytes"] + summary.bytes_transferred,
                         errors=self._base["errors"] + summary.errors,
                         error_lines=self._earlier_errors + [e for e in summary.error_lines
                                                             if e not in self._earlier_errors])
        return merged


class Ended(NamedTuple):
    """How one imapsync process ended (Runner._read)."""

    code: int | None
    renewed: bool  # stopped at its token's deadline, for a fresh token
    refused: bool  # stopped when it said a reconnect was refused


class Runner:
    def __init__(self, rt: Runtime, job_id: int) -> None:
        self.rt = rt
        self.job_id = job_id
        self.output: ImapsyncOutput = ContinuedOutput()
        self.copied = metrics.CopiedCounter()
        self.log_lines: list[str] = []
        self.log_bytes = 0
        self.secrets: list[str] = []
        self.sides: tuple[Side, Side] | None = None
        self.checked: mail_check.CheckResult | None = None
        self.planned: mail_check.CheckResult | None = None  # a dry run's: messages without a usable Date
        self.token_server = None  # a source server that signs in with a token (purelyops.oauth_tokens)
        self.problem_passes = False  # the run's problem may be gone later (a token service that was away)

    def run(self) -> str:
        claimed = migrations.claim(self.rt, self.job_id)
        if isinstance(claimed, str):
            if claimed.startswith("waiting"):
                self._say_waiting(claimed)
            return claimed
        job, lease = claimed
        started = time.monotonic()
        heartbeat = Heartbeat(self.rt, lease)
        heartbeat.start()
        reporter = Reporter(self.rt, job, heartbeat.lost)
        reporter.start()
        reporter.show(self.output.progress, "starting", force=True)
        workdir = tempfile.mkdtemp(prefix=f"purelyops-migration-{job.id}-")  # 0700
        code: int | None = None
        problem: str | None = None
        try:
            code = self._copy(job, lease, heartbeat, reporter, workdir)
        except LeaseLost:
            pass  # told below: whoever holds the job now records its end
        except oauth_tokens.TokenRefused as error:
            problem, self.problem_passes = str(error), not error.permanent  # a token service away: retried
        except (CredentialsUnreadable, PurelyMailError, Refused) as error:
            problem = str(error)
        except OSError as error:
            problem = f"imapsync could not be started ({error.strerror or error}): check IMAPSYNC_BIN"
        except Exception as error:  # noqa: BLE001 - the job must end in a state, whatever happened
            log.exception("migration #%s failed unexpectedly", job.id)
            problem = describe_failure(error)
        try:
            return self._end(job, lease, heartbeat, reporter, code, problem, started)
        finally:
            heartbeat.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    # ---- the copy -------------------------------------------------------------------------

    def _copy(self, job: MigrationJob, lease: Lease, heartbeat: Heartbeat, reporter: Reporter, workdir: str) -> int:
        secrets = migrations.credentials(self.rt, job)
        source, dest = secrets["source"], secrets["dest"]
        source_end, dest_end = self._endpoints(job)
        if not dest:
            made = migrations.make_app_password(self.rt, lease, job)
            if made is None:
                raise LeaseLost
            dest = made
        self.secrets = [s for s in (source, dest) if s]
        # The run's own logins, for the check after imapsync (see _end), while the app password exists.
        self.sides = ((source_end, ImapAuth(job.source_email, source)), (dest_end, ImapAuth(job.dest_email, dest)))
        options = imapsync.Options(job.dry_run, job.exclude, job.max_age_days)
        ca_file = imapsync.ca_bundle(self.rt.settings, workdir)
        server = oauth_tokens.server_of_job(self.rt, job) if job.source_auth != oauth_tokens.PASSWORD else None
        self.token_server = server

        def argv(extra: list[str]):
            return lambda p1, p2: imapsync.argv(self.rt.settings, source_end, dest_end, (p1, p2), workdir, options,
                                                ca_file) + extra

        def start(extra: list[str], token: oauth_tokens.AccessToken | None = None) -> imapsync.ImapsyncProcess:
            """imapsync with the source's password, or with a token (a fresh one unless given) for a token server."""
            if server is None:
                return imapsync.ImapsyncProcess(argv(extra), (source, dest), workdir)
            token = token or oauth_tokens.token_for(self.rt, server, job.source_email)
            self.secrets.append(token.value)
            return imapsync.ImapsyncProcess(argv(extra), (TOKEN_PLACEHOLDER, dest), workdir, access_token=token.value)

        if server is None:
            code = self._read(start([]), heartbeat, reporter).code
        else:
            code = self._copy_with_tokens(job, server, start, heartbeat, reporter)
        summary = ImapsyncOutput.summary(self.output)  # the last imapsync's own (a ContinuedOutput merges from it)
        if not job.dry_run and code in STOPPED_EARLY and not summary.source_after and not heartbeat.cancelled_by:
            # It stopped before its end-of-run folder sizes: count both sides (copying nothing) rather than guess.
            sizes = ImapsyncOutput()
            self._read(start(["--justfoldersizes"]), heartbeat, None, sizes)
            counted = sizes.summary()
            summary.source_after, summary.dest_after = counted.source_before, counted.dest_before
        return code

    def _copy_with_tokens(self, job: MigrationJob, server, start, heartbeat: Heartbeat,  # noqa: ANN001
                          reporter: Reporter) -> int:
        """A run from a token server: imapsync reads its token once, at login, and its
        reconnects send the same one again. So before the token expires (or when imapsync
        ended because a reconnect was refused once it had), the run goes on with a fresh
        token and a fresh imapsync, which skips what the earlier ones copied: one run, one
        progress bar, no attempt used. A dry run keeps its token to its end (it copies nothing,
        so a fresh imapsync would only start it over). The first token is tried with a login of our own
        first, so that an app without access to the mailbox is said in words."""
        output = self.output
        assert isinstance(output, ContinuedOutput)
        unproductive = 0
        first = True
        while True:
            token = oauth_tokens.token_for(self.rt, server, job.source_email)
            if first:  # not a byte copied before the token is known to open the mailbox
                self._try_token(job, server, token)
                first = False
            process = start([], token)
            lifetime = max(token.lifetime, 1.0)
            # A dry run copies nothing that a fresh imapsync would skip: renewing would start it over.
            renew_at = float("inf") if job.dry_run else \
                time.monotonic() + lifetime - max(3.0, min(300.0, lifetime * 0.2))
            copied_before = output.summary().copied
            code, renewed, refused = self._read(process, heartbeat, reporter, renew_at=renew_at)
            if heartbeat.cancelled_by:
                return code
            expired = refused or time.time() >= token.expires_at - 1
            if renewed or (code != 0 and expired and not output.summary().looped):
                unproductive = 0 if output.summary().copied > copied_before else unproductive + 1
                if unproductive >= MAX_UNPRODUCTIVE_CONTINUATIONS and renewed:
                    raise Refused(f"imapsync copied nothing in {unproductive} tokens' lives in a row (each lives "
                                  f"about {lifetime:.0f} s, and a fresh imapsync takes over before its end): the "
                                  "source is too slow to reach its first message within a token's life. What it "
                                  "copied before stays at the destination.")
                if unproductive < MAX_UNPRODUCTIVE_CONTINUATIONS:
                    output.next_segment()
                    log.info("migration #%s goes on with a fresh token (%s)", job.id,
                             "before the token expired" if renewed else "after a reconnect was refused")
                    continue
            return code

    def _try_token(self, job: MigrationJob, server, token: oauth_tokens.AccessToken) -> None:  # noqa: ANN001
        """Log in to the checked source address with the token, as imapsync will: a token the
        server refuses (no mailbox permission, IMAP off) ends the run in words before a byte is
        copied; a server that cannot be reached now is imapsync's to meet (and to be retried)."""
        assert self.sides is not None
        try:
            imap_session.logout(imap_session.connect(self.rt, self.sides[0][0],
                                                     ImapAuth(job.source_email, access_token=token.value)))
        except imap_session.ImapLoginRefused:
            raise oauth_tokens.TokenRefused(oauth_tokens.imap_refusal_words(server, job.source_email)) from None
        except imap_session.ImapUnreachable:
            pass

    def _read(self, process: imapsync.ImapsyncProcess, heartbeat: Heartbeat, reporter: Reporter | None,
              output: ImapsyncOutput | None = None, *, renew_at: float | None = None) -> Ended:
        """Read one imapsync run to its end: every line to the log and the parser, progress to
        the reporter; a Cancel sends SIGTERM, then SIGKILL after MIGRATION_KILL_GRACE. With
        `renew_at` (a token's deadline): imapsync is stopped the same way then, and when it
        says a reconnect was refused (REFUSED_RECONNECT: its token no longer works, whatever
        its stated expiry)."""
        output = output or self.output
        heartbeat.check()  # never start imapsync for a job that is no longer ours
        heartbeat.process = process
        sized = False
        stop_at: float | None = None
        renewing = refused = False
        while not process.ended:
            line = process.next_line(POLL_SECONDS)
            if line and renew_at is not None and stop_at is None and REFUSED_RECONNECT.search(line):
                log.info("migration #%s: imapsync's reconnect was refused (its token no longer works): it is stopped",
                         self.job_id)
                refused, stop_at = True, time.monotonic()
                process.signal(signal.SIGTERM)
            if line:
                self._keep(line)
                progress = output.feed(line)
                if progress is not None and output is self.output:
                    self.copied.update(*output.copied)
                if progress is not None and reporter is not None:
                    reporter.show(progress, force=not sized and bool(progress.bytes_total))
                    sized = sized or bool(progress.bytes_total)
            elif process.output_ended:
                time.sleep(POLL_SECONDS / 4)
            heartbeat.check()
            if heartbeat.cancelled_by and stop_at is None:
                stop_at = time.monotonic()
                process.signal(signal.SIGTERM)
            if renew_at is not None and stop_at is None and time.monotonic() >= renew_at:
                renewing, stop_at = True, time.monotonic()
                process.signal(signal.SIGTERM)
            if stop_at is not None and time.monotonic() - stop_at > self.rt.settings.migration_kill_grace:
                process.signal(signal.SIGKILL)
                stop_at = float("inf")
        process.signal(signal.SIGKILL)  # whatever it left in its group
        heartbeat.check()
        return Ended(process.returncode, renewing and not heartbeat.cancelled_by,
                     refused and not heartbeat.cancelled_by)

    def _endpoints(self, job: MigrationJob) -> tuple[imapsync.Endpoint, imapsync.Endpoint]:
        """Both ends, checked at every run: the source's name must still resolve to allowed
        addresses (imapsync is given the checked address, the name stays for TLS), and a
        certificate that is not trusted ends the run before anything is copied."""
        addresses = servers.resolve_source(self.rt, job.source_host, job.source_port)
        source = imapsync.Endpoint(addresses[0], job.source_port, job.source_email, job.source_security,
                                   name=job.source_host, provider=job.source_provider)
        dest = imapsync.destination(self.rt.settings, job.dest_email)
        for end, whose in ((source, "the source server"), (dest, "PurelyMail's IMAP server")):
            problem = servers.untrusted_certificate(self.rt, end.tls_name, end.host, end.port, end.security)
            if problem:
                raise servers.ServerError(
                    f"certificate not trusted: the certificate of {whose} {end.tls_name}: {problem}. Nothing was "
                    "copied. If it is your own CA's, put that CA in IMAP_CA_FILE.")
        return source, dest

    def _keep(self, line: str) -> None:
        if self.log_bytes < MAX_LOG_BYTES:
            self.log_lines.append(line)
            self.log_bytes += len(line)

    def _mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, MASK)
        return text

    # ---- the end --------------------------------------------------------------------------

    def _logins(self, job: MigrationJob) -> tuple[Side, Side]:
        """Both sides' logins for the check: the run's own; a token source gets a fresh token
        (imapsync's may have expired meanwhile)."""
        assert self.sides is not None
        (source_end, source_auth), dest_side = self.sides
        if self.token_server is not None:
            token = oauth_tokens.token_for(self.rt, self.token_server, job.source_email)
            self.secrets.append(token.value)
            source_auth = ImapAuth(job.source_email, access_token=token.value)
        return (source_end, source_auth), dest_side

    def _check(self, job: MigrationJob, code: int | None, problem: str | None, summary: Summary,
               heartbeat: Heartbeat, reporter: Reporter) -> None:
        """The independent check (purelyops.mail_check): after imapsync's last process ended,
        with the run's own credentials and checked addresses; the lease is still held. What
        it found goes into `summary`."""
        if self.sides is not None and job.dry_run and job.max_age_days and code == 0 and not problem:
            # a plan with a maximum age says what it leaves out for want of a Date
            since = (datetime.now(timezone.utc) - timedelta(days=job.max_age_days)).date()
            self.planned = mail_check.undated(self.rt, self._logins(job)[0], list(summary.mapping), since,
                                              limit=self.rt.settings.migration_check_timeout,
                                              stopped=heartbeat.gone)
            summary.check = self.planned.stored()
            return
        if self.sides is None or not needs_check(dry_run=job.dry_run, code=code, problem=problem,
                                                 cancelled_by=heartbeat.cancelled_by):
            return
        reporter.show(self.output.progress, "checking every message at the destination", force=True)
        since = (datetime.now(timezone.utc) - timedelta(days=job.max_age_days)).date() if job.max_age_days else None
        # A run that could not reach a server printed no folders: the last run's mapping says what to count.
        mapping = summary.mapping or dict((job.summary or {}).get("mapping") or {})
        self.checked = mail_check.check(self.rt, *self._logins(job), mapping, since=since,
                                        gmail=job.source_provider == "gmail",
                                        limit=self.rt.settings.migration_check_timeout, stopped=heartbeat.gone)
        summary.mapping = mapping
        summary.check = self.checked.stored()
        heartbeat.check()
        log.info("migration #%s checked: %s of %s messages at the destination, %s missing, in %.1f s%s", job.id,
                 self.checked.arrived_total, self.checked.source_total, len(self.checked.missing),
                 self.checked.seconds, f" ({self.checked.error})" if self.checked.error else "")

    def _outcome(self, job: MigrationJob, code: int | None, problem: str | None, summary: Summary,
                 cancelled_by: str | None) -> Outcome:
        return decide(dry_run=job.dry_run, code=code, summary=summary,
                      check=self.planned if job.dry_run else self.checked, problem=problem,
                      problem_passes=self.problem_passes, cancelled_by=cancelled_by, source=job.source_email,
                      dest=job.dest_email)

    def _counts(self) -> dict:
        """The counts the job keeps: after a check, what arrived at the destination; else imapsync's progress."""
        progress = self.output.progress
        values = dict(msgs_done=progress.msgs_done, msgs_total=progress.msgs_total, bytes_done=progress.bytes_done,
                      bytes_total=progress.bytes_total)
        checked = self.checked
        if checked is not None and checked.error is None:
            values.update(msgs_done=checked.arrived_total, msgs_total=checked.source_total)
            progress.msgs_done, progress.msgs_total = checked.arrived_total, checked.source_total
            progress.msgs_left = checked.source_total - checked.arrived_total
        return values

    def _end(self, job: MigrationJob, lease: Lease, heartbeat: Heartbeat, reporter: Reporter, code: int | None,
             problem: str | None, started: float) -> str:
        """The end of a run, in this order and only here:
        1. imapsync has ended (or never started);
        2. the independent check of the destination, while this run's destination login
           (maybe a temporary app password) still exists;
        3. the decision: `_outcome`, and whether a failure is retried by itself;
        4. this run's own temporary app password is deleted (only if the row still says it
           is this run's), before the job can be queued again and before any Slack post;
        5. the final state, written once, fenced by the token, retried until PostgreSQL
           answers (a Cancel that reached the row first wins); a re-run is queued;
        6. Slack: the status message (after its last progress update), then the summary
           and the log.
        The heartbeat keeps the Redis lease until the final state is written."""
        if heartbeat.lost.is_set():
            return self._lost(reporter, job, lease)
        summary = self.output.summary()  # one object: what the check finds is kept in it
        try:
            self._check(job, code, problem, summary, heartbeat, reporter)  # 2.
        except LeaseLost:
            return self._lost(reporter, job, lease)
        except oauth_tokens.TokenRefused as error:
            problem, self.problem_passes = str(error), not error.permanent
        except Exception as error:  # noqa: BLE001 - the job must end in a state, whatever happened
            log.exception("migration #%s: its check failed unexpectedly", job.id)
            problem = describe_failure(error)
        summary.error_lines = [self._mask(line) for line in summary.error_lines]
        outcome = self._outcome(job, code, problem, summary, heartbeat.cancelled_by)  # 3.
        state, words = outcome.state, outcome.words
        values = dict(exit_code=code, verdict=words, summary=asdict(summary), **self._counts())
        delays = self.rt.settings.retry_delays
        retry_in: int | None = None
        if outcome.retry and job.retries < len(delays):
            retry_in = delays[job.retries]
            values["verdict"] = words = (f"{words}. Retrying by itself in {duration(retry_in)} (retry {job.retries + 1}"
                                         f" of {len(delays)}); Cancel stops the retries")
        migrations.patiently(f"migration #{job.id}'s clean-up", lambda: migrations.release_app_password(self.rt, lease))
        ended = migrations.patiently(f"migration #{job.id}'s end", lambda: migrations.end_run(
            self.rt, lease, state, retry_in=retry_in, **values))
        heartbeat.stop()
        if ended is None:  # the lease went in the last moment: whoever has the job now tells
            return self._lost(reporter, job, lease)
        assert isinstance(ended, MigrationJob)
        counted = state if ended.status == JobState.QUEUED else ended.status
        metrics.MIGRATION_RUNS.labels(str(counted), "dry" if job.dry_run else "real").inc()
        return self._tell(ended, summary, reporter, started)

    def _tell(self, ended: MigrationJob, summary, reporter: Reporter, started: float) -> str:
        """6. Slack, once the state is written: nothing here changes how the job ended."""
        progress = self.output.progress
        if ended.status == JobState.QUEUED and ended.retry_at is not None:  # an automatic retry, later
            at = ended.retry_at.astimezone(self.rt.settings.zone)
            note = f"{ended.verdict}; at {at:%H:%M} {at.tzname()}"
            reporter.close(ended, progress, note)
            slack_out.post(self.rt, ended, f"Migration #{ended.id}: {note}.")
            migrations.enqueue_waiting(self.rt)
            return "retry scheduled"
        if ended.status == JobState.QUEUED:  # interrupted, re-run at once (not held up by Slack's waits)
            migrations.enqueue(self.rt, ended.id, replace_dead=True)
            reporter.close(ended, progress, "interrupted; re-running it: imapsync skips what it already copied",
                           still_ours=lambda: not _claimed_again(self.rt, ended))
            slack_out.post_summary(self.rt, ended, summary, time.monotonic() - started)
            if self.log_lines:
                slack_out.upload_log(self.rt, ended, self._mask("".join(self.log_lines)))
            return "queued again"
        reporter.close(ended, progress)
        if ended.batch_id is None or ended.status != JobState.DONE:  # in a batch, only what needs a look gets a post
            slack_out.post_summary(self.rt, ended, summary, time.monotonic() - started)
            if self.checked is not None and self.checked.missing:
                slack_out.upload_missing(self.rt, ended, migration_report.missing_table(self.checked.missing))
            if self.log_lines:
                slack_out.upload_log(self.rt, ended, self._mask("".join(self.log_lines)))
        migrations.enqueue_waiting(self.rt)  # a slot and a mailbox are free: the next may start
        return str(ended.status)

    def _lost(self, reporter: Reporter, job: MigrationJob, lease: Lease) -> str:
        """This runner lost the job: it records nothing and leaves the status message alone
        (both are the holder's now). Its own app password, if the row still says so, goes."""
        reporter.stop()
        log.warning("migration #%s: another worker took this migration over; this run wrote nothing", job.id)
        try:
            migrations.release_app_password(self.rt, lease)
        except Exception as error:  # noqa: BLE001 - the reconciler buries it when this run is seen to be over
            log.warning("migration #%s: its app password is left to the reconciler: %s", job.id, type(error).__name__)
        return "lease lost"

    def _say_waiting(self, why: str) -> None:
        """A job that must wait says so, in its thread's status message."""
        try:
            job = migrations.get_job(self.rt, self.job_id)
        except migrations.MigrationError:
            return
        if job.verdict != why:
            migrations.note_waiting(self.rt, job.id, why)
            ts = slack_out.show_status(self.rt, job, note=why)
            if ts and ts != job.status_ts:
                migrations.remember_status_message(self.rt, job.id, ts)
        current = get_current_job()
        if current is not None:
            current.meta["waiting"] = why
            current.save_meta()


