"""What a migration guarantees when the world misbehaves: one imapsync per job even while
Slack makes the runner wait, one job per destination mailbox, a lease that stops a
runner that lost it, a Cancel that is never lost, an imapsync killed from outside taken
as an interruption, temporary app passwords that outlive no crash, and no "done"
without a transfer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from bot.migration_messages import start
from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.imapsync_output import Progress
from purelyops.runtime import Runtime
from tests import migration_steps
from tests.conftest import ADMIN, OPS, ROOT, STANDIN, kill_session, make_settings, process_env, wait_until
from workers.migration import Reporter, reconcile


@pytest.fixture
def settings(clean_state, database_url, redis_url, slack_fake, purelymail_fake, standin_imap):
    """The stand-in, between Dovecots that hold what its logs say was copied (conftest.standin_imap)."""
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=STANDIN,
                         migration_progress_interval=0.3, migration_kill_grace=1.0, migration_heartbeat=3,
                         max_concurrent_migrations=4, max_per_source_host=4,
                         purelymail_imap_port=standin_imap[1].port, purelymail_imap_tls=False)


def env(settings, record: Path, **extra: str) -> dict[str, str]:
    return process_env(settings, IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_RECORD=str(record),
                       MIGRATION_PROGRESS_INTERVAL="0.3", MIGRATION_KILL_GRACE="1", MIGRATION_HEARTBEAT="3",
                       MAX_CONCURRENT_MIGRATIONS="4", MAX_PER_SOURCE_HOST="4", **extra)


def worker(settings, record: Path, *, burst: bool = True, **extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "workers.worker"] + (["--burst"] if burst else [])
    return subprocess.Popen(args, cwd=ROOT, env=env(settings, record, **extra), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    kill_session(proc.pid)  # the worker and its work horse (a process group of its own)
    proc.wait()


def new_job(rt: Runtime, n: int = 0, *, dest: str | None = None, dest_password: str = "pw-dest") -> int:
    with session_scope(rt.database_url) as session:
        server = session.query(SourceServer).filter_by(name="old").one_or_none()
        if server is None:
            server = SourceServer(name="old", host="127.0.0.1", port=migration_steps.SOURCE_PORT, security="none",
                                  created_by=ADMIN)
            session.add(server)
            session.flush()
        server_id = server.id
    spec = migrations.JobSpec(server_id, f"u{n}@old.example", "pw-source", dest or f"u{n}@new.example", dest_password)
    job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id=OPS, idempotency_key=f"k{n}")
    start(rt, job)
    return job.id


def runs(record: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(record.glob("run-*.json"))]


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def job(rt: Runtime, job_id: int) -> MigrationJob:
    return migrations.get_job(rt, job_id)


@pytest.fixture
def record(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


def test_slack_429s_longer_than_the_heartbeat_never_start_a_second_imapsync(rt, settings, record, slack_fake) -> None:
    """Seen before: Slack answering 429 with Retry-After 45 s blocked the thread that also
    renewed the heartbeat; the reconciler gave the job to a second worker, and two
    imapsyncs copied into one mailbox. Here the heartbeat (3 s) is far shorter than
    Slack's wait, two workers run, and the reconciler runs all along."""
    job_id = new_job(rt)
    slack_fake.force_ratelimit("chat.update", times=1000, retry_after=45)
    slack_fake.force_ratelimit("chat.postMessage", times=1000, retry_after=45)
    workers = [worker(settings, record, burst=False, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.004")
               for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and job(rt, job_id).status in ("queued", "running"):
            reconcile(rt)
            assert len(runs(record)) <= 1
            time.sleep(0.5)
        assert job(rt, job_id).status == "done", job(rt, job_id).verdict
        assert len(runs(record)) == 1
        assert job(rt, job_id).attempts == 1
    finally:
        for proc in workers:
            stop(proc)


def test_a_runner_that_loses_its_lease_stops_imapsync_and_writes_nothing(rt, settings, record) -> None:
    job_id = new_job(rt)
    proc = worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.01")
    try:
        wait_until(lambda: runs(record), 20, "imapsync to start")
        pid = runs(record)[0]["pid"]
        with session_scope(rt.database_url) as session:  # someone else holds the job now
            session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(lease="someone-else"))
        wait_until(lambda: not alive(pid), 5, "imapsync to be stopped")
        assert proc.wait(30) == 0
    finally:
        stop(proc)
    row = job(rt, job_id)
    assert (row.status, row.lease, row.verdict) == ("running", "someone-else", None)


def test_two_jobs_into_one_mailbox_never_run_at_once(rt, settings, record, slack_fake) -> None:
    first = new_job(rt, 1, dest="same@new.example")
    second = new_job(rt, 2, dest="SAME@new.example")
    procs = [worker(settings, record, burst=False, IMAPSYNC_STANDIN_FIXTURE="01", IMAPSYNC_STANDIN_PACE="0.004")
             for _ in range(2)]
    most = 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            states = [job(rt, first).status, job(rt, second).status]
            most = max(most, states.count("running"))
            if states == ["done", "done"]:
                break
            time.sleep(0.05)
    finally:
        for proc in procs:
            stop(proc)
    assert [job(rt, first).status, job(rt, second).status] == ["done", "done"]
    assert most == 1
    said = [json.dumps(c.args) for c in slack_fake.calls if c.method in ("chat.update", "chat.postMessage")]
    assert any("right now; this one starts when it ends" in text for text in said)


def test_an_imapsync_killed_from_outside_is_an_interruption_that_is_rerun(rt, settings, record) -> None:
    job_id = new_job(rt)
    proc = worker(settings, record, burst=False, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.005")
    try:
        wait_until(lambda: runs(record), 20, "imapsync to start")
        time.sleep(0.3)
        os.kill(runs(record)[0]["pid"], signal.SIGKILL)  # the OOM killer, say
        wait_until(lambda: job(rt, job_id).status == "done", 60, "the automatic re-run to finish")
    finally:
        stop(proc)
    row = job(rt, job_id)
    assert (row.status, row.attempts, len(runs(record))) == ("done", 2, 2)


def test_a_cancel_is_never_lost_to_a_rerun_click(rt, settings, record, slack_fake) -> None:
    job_id = new_job(rt)
    proc = worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.01")
    try:
        wait_until(lambda: runs(record), 20, "imapsync to start")
        migrations.cancel_job(rt, job_id, actor_id=ADMIN)
        with pytest.raises(migrations.MigrationError):  # a Re-run click on the running job is refused…
            migrations.requeue(rt, job_id, actor_id=ADMIN)
        assert proc.wait(30) == 0  # …and the Cancel still stops it
    finally:
        stop(proc)
    assert job(rt, job_id).status == "cancelled"


def test_a_cancel_waiting_for_a_dead_runner_is_kept(rt, settings, record) -> None:
    job_id = new_job(rt)
    proc = worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.01")
    try:
        wait_until(lambda: runs(record), 20, "imapsync to start")
        kill_session(proc.pid)
        proc.wait()
    finally:
        stop(proc)
    migrations.cancel_job(rt, job_id, actor_id=ADMIN)
    time.sleep(3.2)  # the lease runs out
    reconcile(rt)
    assert job(rt, job_id).status == "cancelled"


def test_a_crash_leaves_no_temporary_app_password_and_no_password_file(rt, settings, record, purelymail_fake,
                                                                     tmp_path) -> None:
    purelymail_fake.add_user_direct("u0@new.example")
    job_id = new_job(rt, dest_password="")
    proc = worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="10", IMAPSYNC_STANDIN_PACE="0.01",
                  TMPDIR=str(tmp_path))
    try:
        wait_until(lambda: runs(record), 20, "imapsync to start")
        assert len(purelymail_fake.users["u0@new.example"].app_passwords) == 1
        assert job(rt, job_id).app_password is not None  # stored, encrypted, before it is used
        assert runs(record)[0]["passwords"] == {"1": "passfile", "2": "passfile"}
        assert all(arg.split("=", 1)[1].startswith("/dev/fd/") for arg in runs(record)[0]["argv"]
                   if arg.startswith("--passfile"))
        kill_session(proc.pid)  # the worker machine dies, work horse and all: no finally runs
        proc.wait()
    finally:
        stop(proc)
    secret = next(iter(purelymail_fake.users["u0@new.example"].app_passwords))
    on_disk = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert on_disk == []
    time.sleep(3.2)
    reconcile(rt)
    assert purelymail_fake.users["u0@new.example"].app_passwords == {}
    assert job(rt, job_id).app_password is None


def test_exit_0_without_a_transfer_is_not_done(rt, settings, record) -> None:
    """An empty host makes imapsync only connect and exit 0 (like --justlogin): nothing was copied."""
    job_id = new_job(rt)
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="06").wait(30) == 0
    row = job(rt, job_id)
    assert row.status == "failed"
    assert "without copying or checking any folder" in row.verdict
    assert row.ciphertext is not None  # the credentials are kept for a re-run


def test_every_ended_job_loses_its_credentials_after_the_retention(rt, settings) -> None:
    ids = [new_job(rt, n) for n in range(3)]
    old = datetime.now(timezone.utc) - timedelta(days=settings.credential_retention_days + 1)
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == ids[0])
                        .values(status="interrupted", started_at=old, finished_at=None))
        session.execute(update(MigrationJob).where(MigrationJob.id == ids[1])
                        .values(status="failed", finished_at=old))
    assert migrations.purge_old_credentials(rt) == 2
    assert [job(rt, i).ciphertext is None for i in ids] == [True, True, False]


def test_edit_credentials_switches_to_and_from_a_temporary_app_password(rt, settings) -> None:
    job_id = new_job(rt)
    with session_scope(rt.database_url) as session:
        session.execute(update(MigrationJob).where(MigrationJob.id == job_id).values(status="failed"))
    migrations.update_credentials(rt, job_id, source_password=None, dest_password="", actor_id=ADMIN)
    assert migrations.credentials(rt, job(rt, job_id)) == {"source": "pw-source", "dest": ""}
    migrations.update_credentials(rt, job_id, source_password=None, dest_password="new-dest", actor_id=ADMIN)
    assert migrations.credentials(rt, job(rt, job_id)) == {"source": "pw-source", "dest": "new-dest"}



def test_a_source_name_that_now_resolves_to_a_metadata_address_is_refused_at_the_run(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, dns, record) -> None:
    """Checked when the server was saved is not enough: the name is resolved again at every
    run, and imapsync is given the address that was checked."""
    settings = make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=STANDIN,
                             dns_resolver=dns.spec, migration_heartbeat=3)
    rt = Runtime(settings)
    dns.add_zone("old.example")
    dns.set("mail.old.example", "A", ["10.20.30.40"])
    with session_scope(rt.database_url) as session:
        session.add(SourceServer(name="old", host="mail.old.example", port=993, security="none", created_by=ADMIN))
    job_id = new_job(rt)
    dns.set("mail.old.example", "A", ["169.254.169.254"])
    assert worker(settings, record).wait(30) == 0
    row = job(rt, job_id)
    assert row.status == "failed" and "169.254.169.254" in row.verdict, row.verdict
    assert runs(record) == []  # imapsync never started

    dns.set("mail.old.example", "A", ["10.20.30.41"])
    migrations.requeue(rt, job_id, actor_id=ADMIN)
    migrations.enqueue(rt, job_id)
    assert worker(settings, record).wait(30) == 0
    assert "--host1=10.20.30.41" in runs(record)[0]["argv"]


def test_a_failed_clean_up_never_changes_how_the_job_ended(rt, settings, record, purelymail_fake) -> None:
    """PurelyMail down when the temporary app password is to be deleted: the job is still
    recorded as done, and the password is kept (encrypted, as a tombstone of its own) until
    the reconciler deletes it."""
    purelymail_fake.add_user_direct("u0@new.example")
    job_id = new_job(rt, dest_password="")
    purelymail_fake.fail_5xx["deleteAppPassword"] = 100  # every retry of the clean-up fails
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="01").wait(60) == 0
    row = job(rt, job_id)
    assert row.status == "done" and row.app_password is None
    assert migrations.tombstones_of(rt, "u0@new.example") == 1
    assert len(purelymail_fake.users["u0@new.example"].app_passwords) == 1
    purelymail_fake.fail_5xx.clear()
    reconcile(rt)
    assert purelymail_fake.users["u0@new.example"].app_passwords == {}
    assert migrations.tombstones_of(rt, "u0@new.example") == 0


def test_a_progress_update_held_by_slack_429s_never_lands_after_the_final_status(rt, settings, slack_fake) -> None:
    """Issue 18, item 8. The runner's Reporter, against the Slack fake: a progress update is
    under way, held by a 429 with a long Retry-After, when the run ends. The final status is
    the last chat.update of the status message Slack accepted; the thread never goes back
    to "running 45%" after "done"."""
    job_id = new_job(rt)
    running = job(rt, job_id)
    running.status = "running"
    reporter = Reporter(rt, running, threading.Event())
    reporter.start()
    reporter.show(Progress(msgs_done=10, msgs_total=100), force=True)
    wait_until(lambda: running.status_ts is not None, 10, "the status message to be posted")
    ts = running.status_ts

    slack_fake.force_ratelimit("chat.update", times=1, retry_after=5)
    reporter.show(Progress(msgs_done=45, msgs_total=100), force=True)
    wait_until(lambda: any(c.method == "chat.update" for c in slack_fake.ratelimited), 10,
               "the progress update to be answered 429")
    ended = job(rt, job_id)
    ended.status = "done"
    reporter.close(ended, Progress(msgs_done=100, msgs_total=100), "every message copied")
    time.sleep(6)  # past the Retry-After: whatever was still under way has landed by now

    accepted = [c.args for c in slack_fake.calls_to("chat.update") if c.ok and c.args.get("ts") == ts]
    assert any("45%" in json.dumps(a["blocks"]) for a in accepted), accepted  # the held update did land
    assert accepted[-1]["text"].endswith(": done"), [a["text"] for a in accepted]
    assert "every message copied" in json.dumps(accepted[-1]["blocks"])
