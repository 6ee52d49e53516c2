"""A migration's life under faults (issue 18), with real worker processes: the races between
runs, clicks, clocks and outages around the lease. The real imapsync (between two real
Dovecots) where a test counts messages and it is on PATH; the stand-in where a test needs to
steer the exact moment imapsync exits.

Each test names the item of the issue it covers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import update

from bot.migration_messages import start
from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import crypto, migrations
from purelyops.runtime import Runtime
from tests import imap_servers, migration_steps
from tests.conftest import ADMIN, OPS, ROOT, STANDIN, make_settings, process_env, wait_until
from tests.pg_stall import StallingProxy
from tests.test_migration_guarantees import alive, job, runs, stop
from workers.migration import reconcile

IMAPSYNC = shutil.which("imapsync")
PACED = str(ROOT / "tests" / "bin" / "paced-imapsync")
CANCEL_AT_EXIT = str(ROOT / "tests" / "bin" / "cancel-at-exit")
DEST = "alice@new.example"


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, standin_imap):
    """The stand-in, with the real IMAP servers that hold what its logs say was copied (for
    the check after each run)."""
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=STANDIN,
                         migration_progress_interval=0.3, migration_kill_grace=1.0, migration_heartbeat=3,
                         max_concurrent_migrations=4, max_per_source_host=4,
                         purelymail_imap_port=standin_imap[1].port, purelymail_imap_tls=False)


@pytest.fixture
def record(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


def worker(settings, record: Path, *, burst: bool = True, prefix: tuple[str, ...] = (), **extra: str):
    values = dict(IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_RECORD=str(record), MIGRATION_PROGRESS_INTERVAL="0.3",
                  MIGRATION_KILL_GRACE="1", MIGRATION_HEARTBEAT="3", MAX_CONCURRENT_MIGRATIONS="4",
                  MAX_PER_SOURCE_HOST="4")
    values.update(extra)
    args = [*prefix, sys.executable, "-m", "workers.worker"] + (["--burst"] if burst else [])
    return subprocess.Popen(args, cwd=ROOT, env=process_env(settings, **values), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def new_job(rt: Runtime, n: int = 0, *, dest: str | None = None, dest_password: str = "pw-dest",
            host: str = "127.0.0.1", port: int | None = None, security: str = "none", source: str | None = None,
            source_password: str = "pw-source", dry_run: bool = False) -> int:
    with session_scope(rt.database_url) as session:
        server = session.query(SourceServer).filter_by(name="old").one_or_none()
        if server is None:
            server = SourceServer(name="old", host=host, port=port or migration_steps.SOURCE_PORT, security=security,
                                  created_by=ADMIN)
            session.add(server)
            session.flush()
        server_id = server.id
    spec = migrations.JobSpec(server_id, source or f"u{n}@old.example", source_password,
                              dest or f"u{n}@new.example", dest_password, dry_run=dry_run)
    made, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id=OPS, idempotency_key=f"k{n}")
    start(rt, made)
    return made.id


def real_runs(record: Path) -> list[int]:
    """The pids of the real imapsync runs, in the order they started."""
    return [int(p.name.split("-")[1]) for p in sorted(record.glob("real-*"), key=lambda p: p.stat().st_mtime_ns)]


def started(record: Path) -> list[int]:
    """The pids of the stand-in's runs so far (from the files' names: a file may be half written)."""
    return [int(p.stem.split("-")[1]) for p in record.glob("run-*.json")]


def latest_run_pid(record: Path) -> int:
    newest = max(record.glob("run-*.json"), key=lambda p: p.stat().st_mtime_ns)
    return int(newest.stem.split("-")[1])


def queued_in_rq(rt: Runtime) -> int:
    return Queue(migrations.QUEUE, connection=rt.redis).count


class AnyPasswordDovecot(imap_servers.Dovecot):
    """PurelyMail's IMAP server in these tests: it takes any password of its users (whether
    the app password was valid is asked of the PurelyMail fake itself)."""

    def _write_users(self) -> None:
        (self.root / "passwd").write_text("".join(f"{u}:::::::nopassword=y\n" for u in self.users))


@pytest.fixture
def dovecots() -> Iterator[tuple[imap_servers.Dovecot, imap_servers.Dovecot]]:
    if IMAPSYNC is None:
        pytest.skip("imapsync is not on PATH (see the README to install it)")
    if not os.path.exists(imap_servers.DOVECOT):
        pytest.skip("dovecot is not installed")
    root = Path(tempfile.mkdtemp(prefix="purelyops-dovecot-"))
    root.chmod(0o755)
    source = imap_servers.Dovecot(root / "source", {"alice@old.example": "source-pw-1"}).start()
    dest = AnyPasswordDovecot(root / "dest", {DEST: "any"}).start()
    yield source, dest
    source.stop()
    dest.stop()
    shutil.rmtree(root, ignore_errors=True)


def real_settings(database_url, redis_url, slack_fake, purelymail_fake, dest: imap_servers.Dovecot, **more):
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=PACED,
                         purelymail_imap_host="127.0.0.1", purelymail_imap_port=dest.port, purelymail_imap_tls=False,
                         migration_progress_interval=0.3, **more)


def real_env(record: Path, mps: int) -> dict[str, str]:
    return dict(IMAPSYNC_BIN=PACED, IMAPSYNC_STANDIN_REAL=IMAPSYNC or "", IMAPSYNC_STANDIN_PACE_MPS=str(mps),
                IMAPSYNC_STANDIN_RECORD=str(record))


# ---- 1. a finished run never deletes the next run's temporary app password ------------------------


@pytest.mark.timeout(300)
def test_an_interrupted_run_held_up_by_slack_never_deletes_the_rerun_s_app_password(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, dovecots, record) -> None:
    """Item 1. imapsync killed by a signal while Slack answers 429: the old run's Slack posts
    take many seconds, and the re-run starts meanwhile on another worker. PurelyMail holds a
    valid app password for the re-run all along, and every message arrives once."""
    source, dest = dovecots
    source.append("alice@old.example", 240)
    purelymail_fake.add_user_direct(DEST)
    settings = real_settings(database_url, redis_url, slack_fake, purelymail_fake, dest, migration_heartbeat=3)
    rt = Runtime(settings)
    job_id = new_job(rt, dest=DEST, dest_password="", port=source.port, security="none",
                     source="alice@old.example", source_password="source-pw-1")
    # 4 messages a second: the re-run copies for about a minute, longer than the old run's
    # Slack posts take under 429s (each call waits out Retry-After up to 10 times).
    procs = [worker(settings, record, burst=False, **real_env(record, 4)) for _ in range(2)]
    held: list[int] = []
    try:
        wait_until(lambda: real_runs(record) and dest.count(DEST) >= 12, 40, "the first imapsync to copy")
        slack_fake.force_ratelimit("chat.update", times=10_000, retry_after=1)
        slack_fake.force_ratelimit("chat.postMessage", times=10_000, retry_after=1)
        os.kill(real_runs(record)[0], signal.SIGKILL)  # the OOM killer, say
        wait_until(lambda: len(real_runs(record)) == 2, 40, "the re-run's imapsync")
        rerun = real_runs(record)[1]
        while alive(rerun):  # the re-run copies: PurelyMail must hold its app password throughout
            held.append(len(purelymail_fake.users[DEST].app_passwords))
            time.sleep(0.05)
        wait_until(lambda: job(rt, job_id).status not in ("queued", "running"), 90, "the re-run to end")
    finally:
        for proc in procs:
            stop(proc)
    row = job(rt, job_id)
    assert (row.status, row.attempts) == ("done", 2), row.verdict
    assert held and min(held) == 1, held
    assert dest.count(DEST) == 240  # every message, once
    assert purelymail_fake.users[DEST].app_passwords == {}  # and nothing valid is left


# ---- 2. an app password PurelyMail no longer has blocks nothing ---------------------------------------


def _store_app_password(rt: Runtime, job_id: int, value: str, owner: str | None) -> None:
    key_id, blob = crypto.encrypt(rt.settings.credential_keys, {"password": value}, f"migration-app-password:{job_id}")
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == job_id)
                        .values(app_password_key_id=key_id, app_password=blob, app_password_lease=owner))


def test_a_stored_app_password_purelymail_already_deleted_does_not_stop_the_next_run(
        rt, settings, record, purelymail_fake) -> None:
    """Item 2. The answer to an earlier delete was lost (or PostgreSQL dropped before the row
    was cleared): the row still holds an app password PurelyMail no longer has."""
    purelymail_fake.add_user_direct("u0@new.example")
    job_id = new_job(rt, dest_password="")
    _store_app_password(rt, job_id, "gone-gone-gone-gone", "an-earlier-run")
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="01").wait(60) == 0
    row = job(rt, job_id)
    assert row.status == "done", row.verdict
    assert len(runs(record)) == 1
    assert purelymail_fake.users["u0@new.example"].app_passwords == {}
    assert migrations.tombstones_of(rt, "u0@new.example") == 0


def test_the_app_password_of_a_deleted_mailbox_is_cleared_not_retried_for_ever(rt, settings, purelymail_fake) -> None:
    """Item 2. The mailbox itself was deleted: PurelyMail says "no such user"; that is gone too."""
    job_id = new_job(rt, dest_password="")
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(status="failed"))
    _store_app_password(rt, job_id, "left-by-a-dead-run", "a-dead-run")
    reconcile(rt)
    assert job(rt, job_id).app_password is None
    assert migrations.tombstones_of(rt, "u0@new.example") == 0


# ---- 3. deleting a job deletes its app password at PurelyMail ------------------------------------------


def test_deleting_a_job_deletes_its_app_password_even_if_purelymail_fails_at_first(
        rt, settings, purelymail_fake, slack, slack_fake) -> None:
    """Item 3. A job whose run left an app password is deleted (the Delete button) while
    PurelyMail answers 502: the admin is told the password is still valid there, it is kept
    as a tombstone, and the reconciler deletes it at PurelyMail."""
    purelymail_fake.add_user_direct("u0@new.example")
    job_id = new_job(rt, dest_password="")
    value = purelymail_fake._op_createAppPassword({"userHandle": "u0@new.example"})["appPassword"]
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(status="failed"))
    _store_app_password(rt, job_id, value, "a-finished-run")
    purelymail_fake.fail_5xx["deleteAppPassword"] = 100
    slack.block_action("migration_delete", value=str(job_id), message_ts=job(rt, job_id).thread_ts)
    told = slack_fake.wait_for("response_url", lambda c: f"Migration #{job_id} deleted" in c.args.get("text", ""),
                               timeout=20)
    assert "still valid at PurelyMail" in told.args["text"]
    with pytest.raises(migrations.MigrationError):
        job(rt, job_id)
    assert purelymail_fake.users["u0@new.example"].app_passwords  # PurelyMail refused: still valid, kept
    purelymail_fake.fail_5xx.clear()
    reconcile(rt)
    assert purelymail_fake.users["u0@new.example"].app_passwords == {}
    assert migrations.tombstones_of(rt, "u0@new.example") == 0


# ---- 4. a Cancel that lands while a run ends ---------------------------------------------------------------


def test_a_cancel_at_the_moment_imapsync_exits_101_ends_the_job_cancelled(rt, settings, record,
                                                                            database_url) -> None:
    """Item 4. imapsync exits 101 (the source could not be reached: retried by itself), and a
    Cancel reaches the row after the runner's last read of it, before its final write."""
    job_id = new_job(rt)
    hook = f"{sys.executable} {CANCEL_AT_EXIT} {database_url.replace('+psycopg', '')} {job_id} {ADMIN}"
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="05", MIGRATION_HEARTBEAT="10",
                  IMAPSYNC_STANDIN_AT_EXIT=hook).wait(60) == 0
    row = job(rt, job_id)
    assert (row.status, row.retry_at, row.cancel_requested_by) == ("cancelled", None, None), row.verdict
    assert f"cancelled by <@{ADMIN}>" in row.verdict
    assert queued_in_rq(rt) == 0
    reconcile(rt)
    assert job(rt, job_id).status == "cancelled" and queued_in_rq(rt) == 0
    assert len(runs(record)) == 1


# ---- 5. a PostgreSQL outage shorter than the lease ---------------------------------------------------------


def test_postgresql_unreachable_for_20_seconds_does_not_stop_the_copy(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, dovecots, record) -> None:
    """Item 5. MIGRATION_HEARTBEAT 30: the Redis lease is held all along, so nobody else can
    take the job; the runner goes on copying, catches up with PostgreSQL, and ends done."""
    source, dest = dovecots
    source.append("alice@old.example", 180)
    settings = real_settings(database_url, redis_url, slack_fake, purelymail_fake, dest, migration_heartbeat=30)
    rt = Runtime(settings)
    job_id = new_job(rt, dest=DEST, dest_password="any", port=source.port, security="none",
                     source="alice@old.example", source_password="source-pw-1")
    proxy = StallingProxy(("127.0.0.1", 5432))
    proxied = settings.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    proc = worker(settings, record, DATABASE_URL=proxied, MIGRATION_HEARTBEAT="30", **real_env(record, 6))
    try:
        wait_until(lambda: real_runs(record) and dest.count(DEST) >= 6, 40, "imapsync to copy")
        proxy.stall()
        time.sleep(20)
        assert alive(real_runs(record)[0])  # still copying
        proxy.resume()
        assert proc.wait(90) == 0
    finally:
        proxy.close()
        stop(proc)
    row = job(rt, job_id)
    assert (row.status, row.attempts, len(real_runs(record))) == ("done", 1, 1), row.verdict
    assert dest.count(DEST) == 180
    assert row.msgs_done == 180


# ---- 6. slots on one clock ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_worker_whose_clock_runs_60_s_ahead_never_exceeds_the_limit(rt, settings, record) -> None:
    """Item 6. Beside two workers on the true clock, one 60 s ahead (Debian's faketime; the
    monotonic clock left alone, or Python's timed waits hang): never more imapsyncs at once
    than MAX_CONCURRENT_MIGRATIONS."""
    if shutil.which("faketime") is None:
        pytest.skip("faketime is not installed")
    ids = [new_job(rt, n) for n in range(6)]
    common = dict(burst=False, MAX_CONCURRENT_MIGRATIONS="2", IMAPSYNC_STANDIN_FIXTURE="01",
                  IMAPSYNC_STANDIN_PACE="0.004")
    procs = [worker(settings, record, **common) for _ in range(2)]
    site = os.pathsep.join([str(ROOT / "tests" / "faketime_site"), str(ROOT)])  # time.sleep despite libfaketime
    procs.append(worker(settings, record, prefix=("faketime", "-f", "+60s"), DONT_FAKE_MONOTONIC="1",
                        PYTHONPATH=site, **common))
    most = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            most = max(most, sum(alive(pid) for pid in started(record)))
            if all(job(rt, i).status == "done" for i in ids):
                break
            migrations.enqueue_waiting(rt)  # what the reconciler does each minute
            time.sleep(0.05)
    finally:
        for proc in procs:
            stop(proc)
    assert [job(rt, i).status for i in ids] == ["done"] * 6
    assert most == 2


# ---- 7. the run budget starts again with the admin's action ------------------------------------------------


@pytest.mark.timeout(300)
def test_run_for_real_sync_again_then_three_interruptions_are_each_rerun(rt, settings, record) -> None:
    """Item 7. A dry run, Run for real, Sync again (the cut-over), then three interruptions
    of that run (deploys, the OOM killer): it is re-run after each, and ends done."""
    job_id = new_job(rt, dry_run=True)
    proc = worker(settings, record, burst=False, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.004")

    def ends(what: str, check) -> None:
        def ended() -> bool:
            migrations.enqueue_waiting(rt)  # what the reconciler does each minute
            return check(job(rt, job_id))
        wait_until(ended, 60, what)

    try:
        ends("the dry run", lambda row: row.status == "done")
        migrations.requeue(rt, job_id, actor_id=ADMIN, dry_run=False)
        ends("the real run", lambda row: row.status == "done" and not row.dry_run)
        migrations.requeue(rt, job_id, actor_id=ADMIN, again=True)
        for n in range(3):
            before = len(started(record))
            ends(f"run {n + 1} of the cut-over",
                 lambda row, before=before: len(started(record)) > before and row.status == "running")
            time.sleep(0.3)
            pid = latest_run_pid(record)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda pid=pid: not alive(pid), 10, "imapsync to die")
            ends("the runner to see the interruption",
                 lambda row, n=n: row.interruptions == n + 1 and row.status in ("queued", "running"))
        ends("the last re-run", lambda row: row.status not in ("queued", "running"))
    finally:
        stop(proc)
    row = job(rt, job_id)
    assert (row.status, row.interruptions) == ("done", 3), row.verdict
    assert len(runs(record)) == 1 + 1 + 4


# ---- 8. only the lease holder writes the status message ------------------------------------------------------


def test_a_runner_that_lost_its_lease_leaves_the_status_message_alone(rt, settings, record, slack_fake) -> None:
    """Item 8. Another runner holds the job now: the one that lost it says nothing in the
    job's status message (it is the holder's), and writes nothing to the row."""
    job_id = new_job(rt)
    proc = worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.01")
    try:
        wait_until(lambda: started(record) and job(rt, job_id).status_ts, 20, "imapsync to start and say so")
        with session_scope(rt.database_url) as session:
            session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(lease="someone-else"))
        taken = len(slack_fake.calls)
        wait_until(lambda: not alive(started(record)[0]), 5, "imapsync to be stopped")
        assert proc.wait(30) == 0
    finally:
        stop(proc)
    late = [c for c in slack_fake.calls[taken:] if c.method in ("chat.update", "chat.postMessage")]
    assert not [c for c in late if "another worker" in str(c.args)], late
    assert all(c.args.get("ts") != job(rt, job_id).status_ts for c in late[1:]), late  # one in flight at most
    assert (job(rt, job_id).status, job(rt, job_id).lease) == ("running", "someone-else")
