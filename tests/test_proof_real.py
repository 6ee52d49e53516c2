"""Done means proven (issue 17), with the real imapsync between real Dovecots, through a
real RQ worker: a run is done only when purelyops' own check finds every source message
at the destination, and otherwise it says which are missing."""

from __future__ import annotations

import email.utils
import imaplib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.blocks.migrations import report_blocks
from bot.migration_messages import start
from db.models import MigrationJob, SourceServer
from db.session import session_scope
from purelyops import migration_report, migrations
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, OPS, ROOT, free_port, kill_session, make_settings, process_env
from tests.imap_servers import DOVECOT, Dovecot
from workers.migration import reconcile

IMAPSYNC = shutil.which("imapsync")
WRAPPED = str(ROOT / "tests" / "bin" / "imapsync-wrapped")  # the real imapsync, steered by IMAPSYNC_STANDIN_*
pytestmark = [pytest.mark.skipif(IMAPSYNC is None, reason="imapsync is not on PATH (see the README to install it)"),
              pytest.mark.skipif(not os.path.exists(DOVECOT), reason="dovecot is not installed")]
OLD, NEW = "alice@old.example", "alice@new.example"


@pytest.fixture
def pair() -> Iterator[tuple[Dovecot, Dovecot]]:
    root = Path(tempfile.mkdtemp(prefix="purelyops-proof-"))
    root.chmod(0o755)
    source = Dovecot(root / "source", {OLD: "source-pw-1"}).start()
    dest = Dovecot(root / "dest", {NEW: "dest-pw-2"}).start()
    yield source, dest
    source.stop()
    dest.stop()
    shutil.rmtree(root, ignore_errors=True)


def message(n: int, *, identified: bool = True) -> bytes:
    lines = ["From: sender@example.org", f"To: {OLD}", f"Subject: message {n}",
             "Date: Mon, 23 Nov 2026 10:00:00 +0000"]
    if identified:
        lines.append(f"Message-Id: <m{n}-{uuid.uuid4().hex}@test>")
    return ("\r\n".join(lines) + "\r\n\r\n" + f"Body {n}\r\n" * 20).encode()


def put(server: Dovecot, user: str, messages: list[bytes], folder: str = "INBOX") -> None:
    client = server.login(user)
    try:
        if folder != "INBOX":
            client.create(folder)
        for raw in messages:
            client.append(folder, None, None, raw)
    finally:
        client.logout()


def message_ids(server: Dovecot, user: str, folder: str = "INBOX") -> Counter:
    """Message-Id of every message in `folder` (\"\" for none), read over IMAP on its own."""
    client = server.login(user)
    try:
        status, count = client.select(folder, readonly=True)
        if status != "OK" or count[0] == b"0":
            return Counter()
        _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        found = Counter()
        for item in data:
            if isinstance(item, tuple):
                match = re.search(rb"(?i)message-id:\s*(\S+)", item[1])
                found[match.group(1).decode() if match else ""] += 1
        return found
    except imaplib.IMAP4.error:
        return Counter()
    finally:
        client.logout()


def delete(server: Dovecot, user: str, ids: list[str], folder: str = "INBOX") -> None:
    client = server.login(user)
    try:
        client.select(folder)
        for message_id in ids:
            _, found = client.search(None, "HEADER", "Message-ID", message_id)
            for number in found[0].split():
                client.store(number, "+FLAGS", "\\Deleted")
        client.expunge()
    finally:
        client.logout()


def settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest: Dovecot, **extra):
    return make_settings(database_url, redis_url, slack_fake, purelymail_fake, imapsync_bin=WRAPPED,
                         purelymail_imap_host="127.0.0.1", purelymail_imap_port=dest.port, purelymail_imap_tls=False,
                         migration_heartbeat=5, **extra)


def new_job(rt: Runtime, port: int, *, dry_run: bool = False, max_age_days: int | None = None) -> int:
    with session_scope(rt.database_url) as session:
        session.add(SourceServer(name="old", host="127.0.0.1", port=port, security="none", created_by=ADMIN))
    with session_scope(rt.database_url) as session:
        server_id = session.scalars(select(SourceServer.id)).one()
    spec = migrations.JobSpec(server_id, OLD, "source-pw-1", NEW, "dest-pw-2", dry_run=dry_run,
                              max_age_days=max_age_days)
    job, _ = migrations.create_job(rt, spec, actor_id=ADMIN, actor_name="", channel_id=OPS, idempotency_key="q")
    start(rt, job)
    return job.id


def burst(settings, **env: str) -> None:
    result = subprocess.run([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT, timeout=180,
                            env=process_env(settings, IMAPSYNC_BIN=WRAPPED,
                                            MIGRATION_RETRY_DELAYS=",".join(settings.migration_retry_delays), **env),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def job(rt: Runtime, job_id: int) -> MigrationJob:
    return migrations.get_job(rt, job_id)


def missing_file(slack_fake, job_id: int) -> str | None:
    files = [f for f in slack_fake.uploaded_files if f.completed and f.filename == f"migration-{job_id}-missing.txt"]
    return files[-1].content.decode() if files else None


def sync_again(rt: Runtime, job_id: int) -> None:
    migrations.requeue(rt, job_id, actor_id=ADMIN, again=True)
    migrations.enqueue(rt, job_id)


def seven(source: Dovecot) -> list[bytes]:
    """7 messages, of which 2 have neither a Message-Id nor a Received header."""
    messages = [message(n) for n in range(5)] + [message(n, identified=False) for n in (5, 6)]
    put(source, OLD, messages)
    return messages


def run_seven(database_url, redis_url, slack_fake, purelymail_fake, pair, **env: str):
    """The seven messages (two headerless) moved by one real run: the job's row when it ended."""
    source, dest = pair
    seven(source)
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest)
    job_id = new_job(Runtime(settings), source.port)
    burst(settings, **env)
    return job(Runtime(settings), job_id)


def test_messages_without_identifying_headers_arrive_and_the_run_is_done(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, pair) -> None:
    dest = pair[1]
    row = run_seven(database_url, redis_url, slack_fake, purelymail_fake, pair)
    job_id = row.id
    assert row.status == "done", row.verdict
    assert dest.count(NEW) == 7
    assert (row.msgs_done, row.msgs_total) == (7, 7)
    assert "each one found there by purelyops' own check" in row.verdict
    assert missing_file(slack_fake, job_id) is None


def test_without_addheader_the_run_is_not_done_and_names_the_two_missing_in_inbox(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, pair) -> None:
    dest = pair[1]
    row = run_seven(database_url, redis_url, slack_fake, purelymail_fake, pair, IMAPSYNC_STANDIN_NO_ADDHEADER="1")
    job_id = row.id
    assert row.status == "incomplete", row.verdict
    assert dest.count(NEW) == 5
    assert "2 of 7 message(s) are not at the destination" in row.verdict and "INBOX (2 of 7 missing)" in row.verdict
    assert (row.msgs_done, row.msgs_total) == (5, 7)  # what arrived, not what imapsync tried
    listed = missing_file(slack_fake, job_id)
    assert listed is not None and len(listed.splitlines()) == 2 + 2  # a head, a rule, the two messages
    assert listed.count("<6@imapsync>") + listed.count("<7@imapsync>") == 2  # their source UIDs
    summary = slack_fake.wait_for("chat.postMessage", lambda c: f"Migration #{job_id} incomplete" in c.args["text"])
    assert "At the destination: 5 of 7 messages" in str(summary.args["blocks"])
    assert "Sync again" in str(slack_fake.calls_to("chat.update")[-1].args["blocks"])


def test_cut_over_new_mail_at_the_destination_never_stands_in_for_a_missing_one(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, pair) -> None:
    source, dest = pair
    messages = seven(source)
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest, migration_retry_delays="1")
    rt = Runtime(settings)
    job_id = new_job(rt, source.port)
    burst(settings)
    assert job(rt, job_id).status == "done", job(rt, job_id).verdict
    put(dest, NEW, [message(100 + n) for n in range(3)])  # cut-over day: new mail arrives at PurelyMail
    copied = [re.search(rb"Message-Id: (\S+)", m).group(1).decode() for m in messages[:2]]
    delete(dest, NEW, copied)  # and 2 copied messages are deleted there
    assert dest.count(NEW) == 8  # more than the source's 7: a count would say all is well

    sync_again(rt, job_id)
    burst(settings, IMAPSYNC_STANDIN_PORT1=str(free_port()))  # the source is unreachable for the copy
    row = job(rt, job_id)
    assert row.status != "done"
    inbox = next(r for r in migration_report.check(row.summary).rows if r.name == "INBOX")
    assert (inbox.state, inbox.dest_msgs, inbox.source_msgs) == ("short", 5, 7)
    assert "❌ `INBOX`: 5 of 7" in str(report_blocks(row, row.summary))

    time.sleep(1.2)
    reconcile(rt)  # the retry is due: what the scheduler does every minute
    burst(settings)
    row = job(rt, job_id)
    assert row.status == "done", row.verdict
    inbox = next(r for r in migration_report.check(row.summary).rows if r.name == "INBOX")
    assert (inbox.state, inbox.dest_msgs, inbox.source_msgs) == ("ok", 7, 7)
    assert dest.count(NEW) == 10 and all(message_ids(dest, NEW)[i] == 1 for i in copied)


def test_two_source_folders_into_one_a_message_missing_from_either_is_reported(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, pair) -> None:
    source, dest = pair
    inbox = [message(n) for n in range(4)]
    old = [message(10 + n) for n in range(3)]
    put(source, OLD, inbox)
    put(source, OLD, old, folder="Old")
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest, migration_retry_delays="600")
    rt = Runtime(settings)
    job_id = new_job(rt, source.port)
    merge = {"IMAPSYNC_STANDIN_EXTRA": "--regextrans2=s/^Old$/INBOX/"}
    burst(settings, **merge)
    row = job(rt, job_id)
    assert row.status == "done", row.verdict
    assert dest.folder_counts(NEW).get("INBOX") == 7 and "Old" not in dest.folder_counts(NEW)
    gone = [re.search(rb"Message-Id: (\S+)", m).group(1).decode() for m in (inbox[0], old[0])]
    delete(dest, NEW, gone)
    put(dest, NEW, [message(200), message(201)])  # two others there do not make up for them

    sync_again(rt, job_id)
    burst(settings, IMAPSYNC_STANDIN_PORT1=str(free_port()), **merge)
    row = job(rt, job_id)
    assert row.status != "done"
    rows = {r.name: r for r in migration_report.check(row.summary).rows}
    assert (rows["INBOX"].state, rows["INBOX"].dest_msgs, rows["INBOX"].source_msgs) == ("short", 3, 4)
    assert (rows["Old"].state, rows["Old"].dest_msgs, rows["Old"].source_msgs) == ("short", 2, 3)
    assert "into INBOX" in rows["Old"].why
    assert "Old (1 of 3 missing, expected in INBOX)" in row.verdict and "INBOX (1 of 4 missing)" in row.verdict


def _imap_processes_of(server: Dovecot) -> list[int]:
    """The pids of the imap processes (one per session) under a Dovecot master."""
    assert server.process is not None
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if name == "imap" and int(rest[1]) == server.process.pid:
            found.append(int(pid))
    return found


def test_source_sessions_killed_mid_run_are_retried_and_every_message_arrives_once(
        clean_state, database_url, redis_url, slack_fake, purelymail_fake, pair) -> None:
    source, dest = pair
    for folder in ("INBOX", "Archive"):
        put(source, OLD, [message(n) for n in range(800)], folder=folder)
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest, migration_retry_delays="2,2,2")
    rt = Runtime(settings)
    job_id = new_job(rt, source.port)
    worker = subprocess.Popen([sys.executable, "-m", "workers.worker"], cwd=ROOT, start_new_session=True,
                              env=process_env(settings, IMAPSYNC_BIN=WRAPPED, MIGRATION_RETRY_DELAYS="2,2,2"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and dest.count(NEW) < 100:
            time.sleep(0.2)
        sessions = _imap_processes_of(source)
        source.stop()  # its sessions die with it, and imapsync's reconnects find nobody
        for pid in sessions:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        assert sessions and dest.count(NEW) < 1600, "the kill came after the copy"
        time.sleep(4)
        source.start()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and job(rt, job_id).status != "done":
            reconcile(rt)
            time.sleep(0.5)
        row = job(rt, job_id)
        assert row.status == "done", row.verdict
        assert row.attempts >= 2 or row.retries >= 1  # it went again by itself
        for folder in ("INBOX", "Archive"):
            assert message_ids(dest, NEW, folder) == message_ids(source, OLD, folder)  # each exactly once
    finally:
        kill_session(worker.pid)
        worker.wait()


@pytest.mark.parametrize("dry_run", [True, False], ids=["plan", "real run"])
def test_a_maximum_age_says_what_it_left_out_for_want_of_a_date(clean_state, database_url, redis_url, slack_fake,
                                                                 purelymail_fake, pair, dry_run: bool) -> None:
    source, dest = pair
    recent = email.utils.format_datetime(datetime.now(timezone.utc) - timedelta(days=2))
    dated = [message(n).replace(b"Mon, 23 Nov 2026 10:00:00 +0000", recent.encode()) for n in range(3)]
    undated = [re.sub(rb"Date: [^\r]*\r\n", b"", message(10 + n)) for n in range(2)]
    old = [message(20).replace(b"Mon, 23 Nov 2026", b"Mon, 23 Nov 2020")]
    put(source, OLD, dated + undated + old)
    settings = settings_for(database_url, redis_url, slack_fake, purelymail_fake, dest)
    rt = Runtime(settings)
    job_id = new_job(rt, source.port, dry_run=dry_run, max_age_days=30)
    burst(settings)
    row = job(rt, job_id)
    assert row.status == "done", row.verdict
    assert "2 message(s) without a usable Date" in row.verdict
    if dry_run:
        assert "2 message(s) without a usable Date are left out" in str(report_blocks(row, row.summary))
    else:
        assert dest.count(NEW) == 3 and (row.msgs_done, row.msgs_total) == (3, 3)
