"""Migrations end to end with the imapsync stand-in (it replays real imapsync logs with
their real exit codes): modal in; thread progress, summary, uploaded log and DB state out;
a real RQ worker process in between."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from sqlalchemy import select

from db.models import AuditEntry, SourceServer
from db.session import session_scope
from purelyops import migrations
from purelyops.runtime import Runtime
from tests.conftest import OPS, ROOT, STANDIN, process_env, wait_until
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.migration_steps import (
    CANARY_DEST,
    CANARY_SOURCE,
    add_server,
    command_lines_while,
    job_row,
    queued,
    submit_migration,
)
from tests.slack_requests import SlackDriver

pytestmark = pytest.mark.usefixtures("slack_accepts_everything")


@pytest.fixture
def settings(standin_settings):
    return standin_settings


@pytest.fixture
def record(tmp_path: Path) -> Path:
    path = tmp_path / "runs"
    path.mkdir()
    return path


def worker(settings, record: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "workers.worker", "--burst"], cwd=ROOT,
                            env=process_env(settings, IMAPSYNC_BIN=STANDIN, IMAPSYNC_STANDIN_RECORD=str(record),
                                            MIGRATION_PROGRESS_INTERVAL="0.3", MIGRATION_KILL_GRACE="1", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_migration_runs_with_progress_summary_and_log_and_leaks_nothing(
        rt: Runtime, settings, slack: SlackDriver, slack_fake: FakeSlack, record: Path, redis_url: str,
        database_url: str) -> None:
    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt)
    posted = slack_fake.wait_for("chat.postMessage", lambda c: "queued" in c.args.get("text", ""))
    assert posted.args["channel"] == OPS
    assert posted.args["text"] == "Migration #1 alice@old.example → alice@new.example queued"
    wait_until(lambda: queued(rt), 5, "the thread to be remembered")
    assert job_row(rt).status == "queued"

    proc = worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="01", IMAPSYNC_STANDIN_PACE="0.003")
    running = command_lines_while(proc)  # while it runs: no password in any command line on this machine
    output = proc.stdout.read()
    assert proc.returncode == 0, output
    assert not any(CANARY_SOURCE in c or CANARY_DEST in c for c in running)

    job = job_row(rt)
    assert (job.status, job.exit_code, job.msgs_done, job.msgs_total) == ("done", 0, 500, 500)
    from rq.job import Job

    assert Job.fetch("migration-1", connection=rt.redis).meta["msgs_total"] == 500  # RQ's view of the progress
    assert job.verdict == ("done: all 500 messages of alice@old.example are in alice@new.example, each one found "
                           "there by purelyops' own check")
    assert job.ciphertext is not None  # kept (encrypted) for a Sync again, until the retention ends
    assert migrations.purge_old_credentials(rt, datetime.now(timezone.utc) + timedelta(days=8)) == 1
    updates = slack_fake.calls_to("chat.update")
    assert updates and all(u.args["ts"] == job.status_ts for u in updates)
    assert "100%" in str(updates[-1].args["blocks"])
    summary = slack_fake.wait_for("chat.postMessage", lambda c: "Migration #1 done" in c.args.get("text", ""))
    assert summary.args["thread_ts"] == job.thread_ts
    assert "At the destination: 500 of 500 messages" in str(summary.args["blocks"])
    uploaded = [f for f in slack_fake.uploaded_files if f.completed]
    assert len(uploaded) == 1 and uploaded[0].thread_ts == job.thread_ts
    assert b"Messages transferred" in uploaded[0].content

    run = json.loads(next(record.glob("run-*.json")).read_text())
    assert run["passwords"] == {"1": "passfile", "2": "passfile"}
    assert all(not a.startswith("--password") for a in run["argv"])
    assert "--user1=alice@old.example" in run["argv"] and "--host2=127.0.0.1" in run["argv"]

    # every sink: Slack calls, the uploaded log, Redis, the database in plain text, the worker's log
    sinks = [str(c.args) for c in slack_fake.calls] + [f.content.decode() for f in uploaded] + [output]
    r = rt.redis
    sinks += [f"{k!r}={r.dump(k)!r}" for k in r.scan_iter()]
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'"):
            sinks += [str(row) for row in conn.execute(f'SELECT * FROM "{table}"')]
    for secret in (CANARY_SOURCE, CANARY_DEST):
        assert not [s for s in sinks if secret in s]
    with session_scope(rt.database_url) as session:
        assert [a.action for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))] == \
            ["server.add", "migration.create"]


def test_an_auth_failure_is_told_in_words_and_rerun_works(rt: Runtime, settings, slack: SlackDriver,
                                                          slack_fake: FakeSlack, record: Path) -> None:
    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt)
    wait_until(lambda: queued(rt), 5, "the queued message")
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="03").wait(30) == 0
    job = job_row(rt)
    assert (job.status, job.exit_code) == ("failed", 161)
    assert job.verdict == "the source server refused the password for alice@old.example"
    assert job.ciphertext is not None  # kept for a re-run, until the retention period ends
    summary = slack_fake.wait_for("chat.postMessage", lambda c: "Migration #1 failed" in c.args.get("text", ""))
    assert "AUTHENTICATIONFAILED" in str(summary.args["blocks"])

    slack.block_action("migration_rerun", value=str(job.id), message_ts=job.status_ts)
    slack_fake.wait_for("response_url", lambda c: "queued again" in c.args.get("text", ""))
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="10").wait(30) == 0
    job = job_row(rt)
    # the counts are what the check found at the destination (its servers hold 500), not the replayed log's 3,000
    assert (job.status, job.attempts, job.msgs_done, job.msgs_total) == ("done", 2, 500, 500)


def test_cancel_stops_an_imapsync_that_ignores_sigterm(rt: Runtime, settings, slack: SlackDriver,
                                                       slack_fake: FakeSlack, record: Path) -> None:
    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt)
    wait_until(lambda: queued(rt), 5, "the queued message")
    proc = worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="09", IMAPSYNC_STANDIN_PACE="0.01",
                  IMAPSYNC_STANDIN_HANG_ON_TERM="1")
    wait_until(lambda: job_row(rt).status == "running" and list(record.glob("run-*.json")), 20, "the job to run")
    pid = json.loads(next(record.glob("run-*.json")).read_text())["pid"]
    slack.block_action("migration_cancel", value="1", message_ts=job_row(rt).thread_ts)
    slack_fake.wait_for("response_url", lambda c: "Stopping migration #1" in c.args.get("text", ""))
    asked = time.monotonic()
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
               or " Z " in Path(f"/proc/{pid}/stat").read_text(), 10, "imapsync to be gone")
    assert time.monotonic() - asked <= settings.migration_kill_grace + 2
    assert proc.wait(20) == 0
    job = job_row(rt)
    assert job.status == "cancelled" and "cancelled by" in job.verdict


def test_a_double_submit_makes_one_job_and_bad_fields_make_none(rt: Runtime, settings, slack: SlackDriver,
                                                                slack_fake: FakeSlack) -> None:
    add_server(slack, slack_fake)
    refused = submit_migration(slack, slack_fake, rt, exclude={"value": "(a+)+$"})
    assert "repeated group" in refused.json()["errors"]["exclude"]  # refused inline: nothing made
    assert migrations.list_jobs(rt) == []
    slack.command("migrate")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migrate" and c.at > 0)
    view = slack_fake.calls_to("views.open")[-1].response["view"]["id"]
    with session_scope(rt.database_url) as session:
        server_id = str(session.scalars(select(SourceServer.id)).one())
    fields = {"server": {"value": server_id}, "source_email": {"value": "bob@old.example"},
              "source_password": {"value": "pw-123456"}, "dest_email": {"dest_mailbox": "bob@new.example"}}
    slack.view_submission("migrate", fields, view_id=view)
    again = slack.post(urlencode({"payload": json.dumps(slack.last_payload)}).encode(),
                       "application/x-www-form-urlencoded", retry_num=1)  # Slack delivers it again
    assert again.status_code == 200
    wait_until(lambda: len(migrations.list_jobs(rt)) == 1, 5, "the job")
    time.sleep(0.5)
    assert len(migrations.list_jobs(rt)) == 1
    assert len([c for c in slack_fake.calls_to("chat.postMessage") if "queued" in c.args.get("text", "")]) == 1


CSV = ("source_email,source_password,dest_email,dest_password\r\n"
       "ann@old.example,pw-ann-1,ann@new.example,\r\n"
       "bob@old.example,\"pw,bob\",bob@new.example,dest-bob\r\n")


def open_bulk(slack: SlackDriver, slack_fake: FakeSlack, rt: Runtime) -> str:
    slack.command("migrate bulk")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migrate_bulk")
    with session_scope(rt.database_url) as session:
        return str(session.scalars(select(SourceServer.id)).one())


def test_a_bad_csv_lists_every_bad_row_and_creates_nothing(rt: Runtime, settings, slack: SlackDriver,
                                                           slack_fake: FakeSlack) -> None:
    add_server(slack, slack_fake)
    server = open_bulk(slack, slack_fake, rt)
    bad = CSV + "nobody,pw,x@new.example,\r\ncat@old.example,,cat@new.example,\r\n"
    slack.view_submission("migrate_bulk", {"name": {"value": "wave 1"}, "server": {"value": server},
                                           "pasted": {"value": bad}})
    reply = slack_fake.wait_for("chat.postEphemeral", lambda c: "nothing was created" in c.args.get("text", ""))
    shown = str(reply.args["blocks"])
    assert "line 4: source_email" in shown and "line 5: source_password is empty" in shown
    assert migrations.list_jobs(rt) == []


def test_a_batch_runs_dry_first_then_for_real_from_one_message(rt: Runtime, settings, slack: SlackDriver,
                                                               slack_fake: FakeSlack, record: Path,
                                                               purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("new.example")
    for name in ("ann", "bob"):
        purelymail_fake.add_user_direct(f"{name}@new.example")
    add_server(slack, slack_fake)
    server = open_bulk(slack, slack_fake, rt)
    upload = slack_fake.add_user_file("wave1.csv", CSV.encode())
    slack.view_submission("migrate_bulk", {"name": {"value": "wave 1"}, "server": {"value": server},
                                           "file": {"value": [upload]}})
    message = slack_fake.wait_for("chat.postMessage", lambda c: "Batch wave 1" in c.args.get("text", ""))
    wait_until(lambda: len(migrations.list_jobs(rt, "queued")) == 2, 5, "two queued jobs")
    assert all(j.dry_run for j in migrations.list_jobs(rt))
    assert worker(settings, record).wait(60) == 0  # --dry: the stand-in replays the real dry run
    assert [j.status for j in migrations.list_jobs(rt)] == ["done", "done"]
    final = slack_fake.calls_to("chat.update")[-1]
    assert final.args["ts"] == message.response["ts"] and "2 of 2 migrations finished" in final.args["text"]
    shown = "\n".join(b["text"]["text"] for b in final.args["blocks"] if b["type"] == "section")
    assert ":white_check_mark: #1 `ann@old.example` → `ann@new.example` · done (dry run)" in shown  # a line each
    assert ":white_check_mark: #2 `bob@old.example` → `bob@new.example` · done (dry run)" in shown
    # quiet on success: no per-mailbox posts or logs in a batch
    assert [c for c in slack_fake.calls_to("chat.postMessage") if "Migration #" in c.args.get("text", "")] == []

    slack.block_action("batch_run_all", value="1", message_ts=message.response["ts"])
    slack_fake.wait_for("response_url",
                        lambda c: "2 migration(s) of the batch queued for real" in c.args.get("text", ""))
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="01").wait(60) == 0
    jobs = migrations.list_jobs(rt)
    assert [(j.status, j.dry_run) for j in jobs] == [("done", False), ("done", False)]
    runs = [json.loads(p.read_text()) for p in record.glob("run-*.json")]
    assert sorted(r["fixture"] for r in runs) == ["01", "01", "08", "08"]
    # ann's blank destination password: a temporary app password per run, always deleted afterwards
    slack.command("jobs wave 1")
    listed = slack_fake.wait_for("response_url", lambda c: "in batch wave 1" in c.args.get("text", ""))
    assert "ann@old.example" in str(listed.args["blocks"]) and "bob@old.example" in str(listed.args["blocks"])
    made, deleted = purelymail_fake.calls_to("createAppPassword"), purelymail_fake.calls_to("deleteAppPassword")
    assert len(made) == 2 and len(deleted) == 2 and purelymail_fake.users["ann@new.example"].app_passwords == {}


def test_the_destination_select_suggests_cached_mailboxes(rt: Runtime, settings, slack: SlackDriver,
                                                          slack_fake: FakeSlack) -> None:
    from db.models import Mailbox

    with session_scope(rt.database_url) as session:
        session.add_all([Mailbox(address=a, local_part=a.split("@")[0], domain="new.example")
                         for a in ("alice@new.example", "alina@new.example", "bob@new.example")])
    add_server(slack, slack_fake)
    slack.command("migrate")
    slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migrate")
    options = slack.block_suggestion("dest_mailbox", "ali").json()["options"]
    assert [o["value"] for o in options] == ["alice@new.example", "alina@new.example"]
    typed = slack.block_suggestion("dest_mailbox", "Carol@New.example").json()["options"]
    assert [o["value"] for o in typed] == ["carol@new.example"]


def test_edit_credentials_switches_a_job_to_a_temporary_app_password(rt: Runtime, settings, slack: SlackDriver,
                                                                    slack_fake: FakeSlack, purelymail_fake,
                                                                    record: Path) -> None:
    purelymail_fake.add_user_direct("alice@new.example")
    add_server(slack, slack_fake)
    submit_migration(slack, slack_fake, rt)
    wait_until(lambda: queued(rt), 5, "the queued message")
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="04").wait(30) == 0  # PurelyMail refused the password
    job = job_row(rt)
    slack.block_action("migration_edit_credentials", value=str(job.id), message_ts=job.status_ts)
    opened = slack_fake.wait_for("views.open", lambda c: c.args["view"]["callback_id"] == "migration_credentials")
    metadata = opened.args["view"]["private_metadata"]
    response = slack.view_submission("migration_credentials", {"dest_mode": {"value": "app"},
                                                               "dest_password": {"value": "typed-anyway"}},
                                     private_metadata=metadata)
    assert response.json()["errors"]["dest_password"].startswith("choose 'The mailbox's password'")
    slack.view_submission("migration_credentials", {"dest_mode": {"value": "app"}}, private_metadata=metadata)
    slack_fake.wait_for("chat.postEphemeral", lambda c: "were updated" in c.args.get("text", ""))
    assert migrations.credentials(rt, job_row(rt)) == {"source": CANARY_SOURCE, "dest": ""}
    slack.block_action("migration_rerun", value=str(job.id), message_ts=job.status_ts)
    assert worker(settings, record, IMAPSYNC_STANDIN_FIXTURE="01").wait(30) == 0
    assert job_row(rt).status == "done"
    run = json.loads(sorted(record.glob("run-*.json"))[-1].read_text())
    assert "--user2=alice@new.example" in run["argv"]
    assert purelymail_fake.users["alice@new.example"].app_passwords == {}  # made for the run, deleted after
