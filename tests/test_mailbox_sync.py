"""The mailbox cache sync: set-based, locked, safe when PurelyMail fails, reported when it matters."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from rq import Queue
from sqlalchemy import func, select

from db.models import Mailbox, SyncState
from db.session import session_scope
from purelyops import mailboxes
from purelyops.runtime import Runtime
from tests.conftest import ALERTS, ROOT, process_env, run_burst_worker
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver
from workers.mailbox_sync import enqueue_first_sync
from workers.periodic import periodic_jobs


def cache(rt: Runtime) -> list[str]:
    with session_scope(rt.database_url) as session:
        return list(session.scalars(select(Mailbox.address).order_by(Mailbox.address)))


def test_the_registered_nightly_job_syncs_in_a_real_worker_and_reports_changes(
        rt: Runtime, settings, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")
    for name in ("ann", "bob"):
        purelymail_fake.add_user_direct(f"{name}@example.com")
    job = next(p for p in periodic_jobs(settings) if p.func.__name__ == "run_mailbox_sync")
    assert job.cron == "0 2 * * *"  # USER_SYNC_CRON in TZ (UTC here)

    def run() -> None:
        Queue(job.queue, connection=rt.redis).enqueue(job.func)
        result = run_burst_worker(settings)
        assert result.returncode == 0, result.stderr

    run()
    assert cache(rt) == ["ann@example.com", "bob@example.com"]
    assert [m.text for m in slack_fake.messages(ALERTS)] == ["User sync: 2 added, 0 removed, 2 in all."]

    run()  # nothing changed: no message
    assert len(slack_fake.messages(ALERTS)) == 1

    del purelymail_fake.users["ann@example.com"]
    purelymail_fake.add_user_direct("cat@example.com")
    run()
    assert cache(rt) == ["bob@example.com", "cat@example.com"]
    report = slack_fake.messages(ALERTS)[-1]
    assert report.text == "User sync: 1 added, 1 removed, 2 in all."
    assert "cat@example.com" in str(report.blocks) and "ann@example.com" in str(report.blocks)
    assert len(purelymail_fake.calls_to("listUser")) == 3


def test_a_failing_purelymail_leaves_the_cache_and_says_why(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack,
                                                            purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")
    purelymail_fake.add_user_direct("ann@example.com")
    mailboxes.sync(rt)
    purelymail_fake.fail_5xx = {"listUser": 3}
    slack.command("mailbox sync")
    reply = slack_fake.wait_for("response_url", lambda c: "User sync failed" in c.args.get("text", ""), timeout=15)
    assert "the cache was left as it was" in reply.args["text"]
    assert cache(rt) == ["ann@example.com"]
    alert = slack_fake.wait_for("chat.postMessage")
    assert alert.args["channel"] == ALERTS and "PurelyMail" in alert.args["text"]
    assert mailboxes.last_sync(rt).last_error


def test_exactly_the_cap_warns_that_the_list_may_be_cut_short(rt: Runtime, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")
    for i in range(1005):
        purelymail_fake.add_user_direct(f"u{i:04d}@example.com")
    report = mailboxes.sync(rt)
    assert report.capped and report.total == 1000
    from bot.blocks.mailboxes import sync_report_blocks

    assert "may have cut the list short" in sync_report_blocks(report)[0]


def test_a_capped_list_removes_nothing_and_marks_the_cache_incomplete(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")
    for i in range(1001):
        purelymail_fake.add_user_direct(f"u{i:04d}@example.com")
    mailboxes.sync(rt)  # capped already: u1000 was never listed
    with session_scope(rt.database_url) as session:  # the bot created this one itself, after that sync
        session.add(Mailbox(address="zed@example.com", local_part="zed", domain="example.com"))
    del purelymail_fake.users["u0000@example.com"]  # deleted elsewhere: u1000 moves up into the first 1,000
    purelymail_fake.add_user_direct("zed@example.com")

    slack.command("mailbox sync")
    reply = slack_fake.wait_for("response_url", lambda c: "User sync" in c.args.get("text", ""), timeout=15)
    assert "Nothing removed" in reply.args["text"] and "may be cut short" in reply.args["text"]
    assert "u1000@example.com" in str(reply.args["blocks"])  # added, even so
    now = cache(rt)
    assert {"u0000@example.com", "zed@example.com", "u1000@example.com"} <= set(now) and len(now) == 1002
    alert = slack_fake.wait_for("chat.postMessage")
    assert alert.args["channel"] == ALERTS and "Nothing removed" in alert.args["text"]
    health = mailboxes.cache_health(rt)
    assert not health.complete and health.capped and "1,000" in health.why

    slack.command("mailbox sync confirm")  # an admin's word never overrides the cap
    slack_fake.wait_for("response_url", lambda c: c.at > reply.at and "Nothing removed" in c.args.get("text", ""),
                        timeout=15)
    assert len(cache(rt)) == 1002


def test_an_empty_list_removes_nothing_until_an_admin_confirms(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")
    for name in ("ann", "bob", "cat"):
        purelymail_fake.add_user_direct(f"{name}@example.com")
    mailboxes.sync(rt)
    first = mailboxes.last_sync(rt).last_ok_at
    purelymail_fake.users.clear()  # PurelyMail answers with no mailboxes at all

    report = mailboxes.sync(rt)
    assert report.removed == [] and report.held_back == 3 and "no mailboxes at all" in report.distrust
    assert cache(rt) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    health = mailboxes.cache_health(rt)
    assert not health.complete and not health.capped and health.since > first
    report = mailboxes.sync(rt)  # still distrusted: "incomplete since" stays the first time
    assert mailboxes.cache_health(rt).since == health.since

    slack.command("mailbox sync confirm")
    slack_fake.wait_for("response_url", lambda c: "0 added, 3 removed" in c.args.get("text", ""), timeout=15)
    assert cache(rt) == [] and mailboxes.cache_health(rt).complete


def test_a_large_sudden_drop_is_held_back_and_a_small_one_is_not(rt: Runtime,
                                                                 purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")
    for i in range(40):
        purelymail_fake.add_user_direct(f"u{i:02d}@example.com")
    mailboxes.sync(rt)
    for i in range(9):  # 9 gone: under the rule's minimum of 10
        del purelymail_fake.users[f"u{i:02d}@example.com"]
    report = mailboxes.sync(rt)
    assert len(report.removed) == 9 and not report.distrust and mailboxes.cache_health(rt).complete
    for i in range(9, 19):  # 10 of the 31 cached at once: more than 20%
        del purelymail_fake.users[f"u{i:02d}@example.com"]
    report = mailboxes.sync(rt)
    assert report.removed == [] and report.held_back == 10 and "lacks 10 of the 31" in report.distrust
    assert len(cache(rt)) == 31 and not mailboxes.cache_health(rt).complete
    from bot.blocks.mailboxes import sync_report_blocks

    assert "`mailbox sync confirm`" in sync_report_blocks(report)[1][0]["text"]["text"]
    report = mailboxes.sync(rt, confirm_drop=True)
    assert len(report.removed) == 10 and len(cache(rt)) == 21 and mailboxes.cache_health(rt).complete


def test_two_syncs_never_run_at_once(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    lock = rt.redis.lock(mailboxes.SYNC_LOCK, timeout=30)
    assert lock.acquire(blocking=False)  # another process is syncing
    try:
        slack.command("mailbox sync")
        slack_fake.wait_for("response_url", lambda c: "already running" in c.args.get("text", ""))
    finally:
        lock.release()


def test_the_first_start_queues_a_sync_only_when_the_cache_was_never_filled(rt: Runtime,
                                                                            purelymail_fake: FakePurelyMail) -> None:
    assert enqueue_first_sync(rt) is True
    assert Queue("default", connection=rt.redis).count == 1
    mailboxes.sync(rt)
    assert enqueue_first_sync(rt) is False



def test_a_sync_run_by_a_worker_whose_clock_runs_a_day_ahead_records_the_database_s_time(
        rt: Runtime, settings, purelymail_fake: FakePurelyMail) -> None:
    """Issue 18, item 8: the mailbox cache is on the database's clock. The nightly job runs
    in a worker 25 hours ahead (Debian's faketime): the last sync and every mailbox's first
    and last seen are PostgreSQL's now(), so the next sync, on the true clock, still removes
    a mailbox PurelyMail no longer has (a last_seen of tomorrow would keep it for a day)."""
    if shutil.which("faketime") is None:
        pytest.skip("faketime is not installed")
    purelymail_fake.add_domain_direct("example.com")
    for name in ("ann", "bob"):
        purelymail_fake.add_user_direct(f"{name}@example.com")
    site = os.pathsep.join([str(ROOT / "tests" / "faketime_site"), str(ROOT)])  # time.sleep despite libfaketime
    env = process_env(settings, PYTHONPATH=site, DONT_FAKE_MONOTONIC="1")
    result = subprocess.run(["faketime", "-f", "+25h", sys.executable, "-c",
                             "import datetime; print(datetime.datetime.now(datetime.timezone.utc).isoformat()); "
                             "from workers.mailbox_sync import run_mailbox_sync; print(run_mailbox_sync())"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    faked_now, outcome = result.stdout.strip().splitlines()[-2:]
    assert "'added': 2, 'removed': 0" in outcome, outcome

    with session_scope(rt.database_url) as session:
        db_now = session.scalar(select(func.now()))
        state = session.get(SyncState, mailboxes.SYNC_STATE)
        seen = session.execute(select(Mailbox.first_seen, Mailbox.last_seen)).all()
    assert datetime.fromisoformat(faked_now) - db_now > timedelta(hours=24)  # the worker's clock was faked
    recorded = [state.last_run_at, state.last_ok_at] + [t for row in seen for t in row]
    assert len(recorded) == 6
    assert all(timedelta(0) <= db_now - at < timedelta(minutes=1) for at in recorded), (db_now, recorded)

    del purelymail_fake.users["ann@example.com"]
    report = mailboxes.sync(rt)  # on the true clock
    assert report.removed == ["ann@example.com"] and not report.distrust
    assert cache(rt) == ["bob@example.com"]
