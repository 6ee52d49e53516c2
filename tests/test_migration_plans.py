"""Migrations people can plan and trust, with the real imapsync between real Dovecots: a
dry run's plan counts every folder like an independent IMAP count does and says whether
it fits the destination's quota; a real run's own check names every missing message; a server that could not
be reached is retried by itself, a refused login never."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.blocks.migrations import report_blocks
from bot.migration_messages import start
from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import migration_report, migrations
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, OPS, ROOT, free_port, kill_session, make_settings, process_env, wait_until
from tests.imap_servers import DOVECOT, Dovecot
from workers.migration import reconcile

IMAPSYNC = shutil.which("imapsync")
pytestmark = [pytest.mark.skipif(IMAPSYNC is None, reason="imapsync is not on PATH (see the README to install it)"),
              pytest.mark.skipif(not os.path.exists(DOVECOT), reason="dovecot is not installed")]
FOLDERS = {"INBOX": 30, "Archive": 20, "Sent": 10, "Trash": 5}


@pytest.fixture
def servers() -> Iterator[tuple[Dovecot, Dovecot, Path]]:
    """A source with four folders, and a destination whose mailboxes hold 16 KiB at most."""
    root = Path(tempfile.mkdtemp(prefix="purelyops-plan-"))
    root.chmod(0o755)
    source = Dovecot(root / "source", {"alice@old.example": "source-pw-1"}).start()
    dest = Dovecot(root / "dest", {"alice@new.example": "dest-pw-2"}, quota_kib=16).start()
    for folder, count in FOLDERS.items():
        source.append("alice@old.example", count, folder=folder)
    yield source, dest, root
    source.stop()
    dest.stop()
    shutil.rmtree(root, ignore_errors=True)


def settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest: Dovecot, **extra):
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=IMAPSYNC,
                         purelymail_imap_host="127.0.0.1", purelymail_imap_port=dest.port, purelymail_imap_tls=False,
                         migration_heartbeat=5, **extra)


def new_job(rt: Runtime, port: int, *, dry_run: bool, exclude: str | None = None,
            source_password: str = "source-pw-1") -> int:
    with session_scope(rt.database_url) as session:
        session.add(SourceServer(name="old", host="127.0.0.1", port=port, security="none", created_by=ADMIN))
    with session_scope(rt.database_url) as session:
        server_id = session.scalars(select(SourceServer.id)).one()
    spec = migrations.JobSpec(server_id, "alice@old.example", source_password, "alice@new.example", "dest-pw-2",
                              dry_run=dry_run, exclude=exclude)
    job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id=OPS, idempotency_key="p")
    start(rt, job)
    return job.id


def burst(settings) -> None:
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, timeout=120,
                            env=process_env(settings, IMAPSYNC_BIN=IMAPSYNC), capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def job(rt: Runtime, job_id: int) -> MigrationJob:
    return migrations.get_job(rt, job_id)


def test_a_dry_run_plans_every_folder_and_says_it_does_not_fit(clean_state, database_url, redis_url, slack_fake,
                                                               purelymail_fake, servers) -> None:
    source, dest, _ = servers
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest)
    rt = Runtime(settings)
    job_id = new_job(rt, source.port, dry_run=True, exclude="^Trash$")
    burst(settings)
    row = job(rt, job_id)
    assert row.status == "done", row.verdict
    plan = migration_report.plan(row.summary, None)
    counted = source.folder_counts("alice@old.example")
    assert {r.name: r.source_msgs for r in plan.rows if r.state == "planned"} == \
        {name: n for name, n in counted.items() if name != "Trash"}
    assert [r.name for r in plan.rows if r.state == "skipped"] == ["Trash"]
    assert plan.total_msgs == 60 and plan.quota_limit == 16 * 1024
    assert plan.over_by and plan.over_by > 0 and plan.fits_words.startswith("does not fit: ")
    posted = slack_fake.wait_for("chat.postMessage", lambda c: "*Plan*" in str(c.args.get("blocks")))
    text = str(posted.args["blocks"])
    assert "does not fit" in text and "Trash" in text and "excluded by the folder pattern" in text
    assert dest.count("alice@new.example") == 0  # a plan copies nothing


def test_a_real_run_checks_every_folder_and_names_what_fell_short(clean_state, database_url, redis_url, slack_fake,
                                                                  purelymail_fake, servers) -> None:
    """Over quota: not done, and the file in the thread lists exactly the messages that an
    IMAP listing of both sides shows missing."""
    source, dest, _ = servers
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest)
    rt = Runtime(settings)
    job_id = new_job(rt, source.port, dry_run=False)
    burst(settings)
    row = job(rt, job_id)
    assert row.status == "incomplete", row.verdict
    result = migration_report.check(row.summary)
    arrived = dest.folder_counts("alice@new.example")
    for folder_row in result.rows:  # the check's counts are the servers' own
        assert folder_row.source_msgs == FOLDERS[folder_row.name]
        assert folder_row.dest_msgs == arrived.get(folder_row.name, 0)
    assert result.short and not result.complete
    assert "message(s) are not at the destination" in row.verdict
    assert "❌" in str(report_blocks(row, row.summary))
    assert (row.msgs_done, row.msgs_total) == (sum(arrived.values()), sum(FOLDERS.values()))
    missing = set()
    for folder in FOLDERS:
        there = set(_message_ids(dest, "alice@new.example", folder))
        missing |= {(folder, i) for i in _message_ids(source, "alice@old.example", folder) if i not in there}
    listed = next(f for f in slack_fake.uploaded_files if f.completed
                  and f.filename == f"migration-{job_id}-missing.txt").content.decode().splitlines()[2:]
    assert missing and {(line.split()[0], line.split()[-1]) for line in listed} == missing
    assert len(listed) == len(missing)


def _message_ids(server: Dovecot, user: str, folder: str) -> list[str]:
    client = server.login(user)
    try:
        status, count = client.select(f'"{folder}"', readonly=True)
        if status != "OK" or count[0] == b"0":
            return []
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        return [item[1].decode().split(":", 1)[1].strip() for item in data if isinstance(item, tuple)]
    finally:
        client.logout()


def test_a_source_that_comes_up_later_is_retried_by_itself(clean_state, database_url, redis_url, slack_fake,
                                                           purelymail_fake, tmp_path) -> None:
    root = Path(tempfile.mkdtemp(prefix="purelyops-retry-"))
    root.chmod(0o755)
    dest = Dovecot(root / "dest", {"alice@new.example": "dest-pw-2"}).start()
    source = Dovecot(root / "source", {"alice@old.example": "source-pw-1"})  # not started yet: refused
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest, migration_retry_delays="2,2")
    rt = Runtime(settings)
    job_id = new_job(rt, source.port, dry_run=False)
    worker = subprocess.Popen([sys.executable, "-m", "workers.worker"], cwd=ROOT, start_new_session=True,
                              env=process_env(settings, IMAPSYNC_BIN=IMAPSYNC, MIGRATION_RETRY_DELAYS="2,2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: job(rt, job_id).retries == 1, 60, "the first run to fail and schedule a retry")
        row = job(rt, job_id)
        assert row.status == "queued" and "Retrying by itself in 2 s" in row.verdict
        slack_fake.wait_for("chat.postMessage", lambda c: "Cancel stops the retries" in c.args.get("text", ""))
        source.start()
        source.append("alice@old.example", 12)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and job(rt, job_id).status != "done":
            reconcile(rt)  # what the scheduler does every minute
            time.sleep(0.5)
        assert job(rt, job_id).status == "done", job(rt, job_id).verdict
        assert dest.count("alice@new.example") == 12
    finally:
        kill_session(worker.pid)
        worker.wait()
        source.stop()
        dest.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_refused_login_is_never_retried(clean_state, database_url, redis_url, slack_fake, purelymail_fake,
                                          servers) -> None:
    source, dest, _ = servers
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest, migration_retry_delays="1")
    rt = Runtime(settings)
    job_id = new_job(rt, source.port, dry_run=False, source_password="wrong-password")
    burst(settings)
    row = job(rt, job_id)
    assert (row.status, row.exit_code, row.retries, row.retry_at) == ("failed", 161, 0, None)


def test_cancel_stops_the_retries(clean_state, database_url, redis_url, slack_fake, purelymail_fake) -> None:
    settings = make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=IMAPSYNC,
                             migration_retry_delays="600")
    rt = Runtime(settings)
    job_id = new_job(rt, free_port(), dry_run=False)  # nothing listens there
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, timeout=120,
                            env=process_env(settings, IMAPSYNC_BIN=IMAPSYNC, MIGRATION_RETRY_DELAYS="600"),
                            capture_output=True, text=True)
    assert result.returncode == 0
    assert (job(rt, job_id).status, job(rt, job_id).retries) == ("queued", 1)
    migrations.cancel_job(rt, job_id, actor_id=ADMIN)
    reconcile(rt)
    assert job(rt, job_id).status == "cancelled"



