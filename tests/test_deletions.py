"""The deletion queue: nothing is deleted on the spot, Cancel works, due deletions run
in a real RQ worker and are reported where they were asked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import func, select, update

from bot import alerts
from db.models import AuditEntry, Domain, Mailbox, PendingDeletion
from db.session import session_scope
from purelyops import deletions
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, OPS, ROOT, process_env, run_burst_worker
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver
from workers.periodic import periodic_jobs


def rows(rt: Runtime, model, *where):
    with session_scope(rt.database_url) as session:
        return list(session.scalars(select(model).where(*where)))


def test_scheduling_twice_keeps_one_pending_deletion(rt: Runtime) -> None:
    first = deletions.schedule(rt, kind="user", target="bob@example.com", actor_id=ADMIN)
    again = deletions.schedule(rt, kind="user", target="bob@example.com", actor_id=ADMIN)
    assert first.created and not again.created
    assert again.deletion.id == first.deletion.id
    assert len(rows(rt, PendingDeletion)) == 1
    assert [a.action for a in rows(rt, AuditEntry)] == ["user.delete.schedule"]


def test_pending_lists_and_cancel_button_cancels(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    scheduled = deletions.schedule(rt, kind="domain", target="old.example", actor_id=ADMIN).deletion
    slack.command("pending")
    listing = slack_fake.wait_for("response_url")
    assert "old.example" in str(listing.args["blocks"]) and "23 h" in str(listing.args["blocks"])

    slack.block_action("deletion_cancel", value=str(scheduled.id))
    replaced = slack_fake.wait_for("response_url", lambda c: c.args.get("replace_original") is True)
    assert "cancelled" in replaced.args["text"]
    assert rows(rt, PendingDeletion)[0].status == "cancelled"

    slack.block_action("deletion_cancel", value=str(scheduled.id))  # a double click
    late = slack_fake.wait_for("response_url", lambda c: "no longer pending" in c.args.get("text", ""))
    assert late.args["response_type"] == "ephemeral"


def test_only_admins_cancel(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    scheduled = deletions.schedule(rt, kind="domain", target="old.example", actor_id=ADMIN).deletion
    slack.command("pending", user_id="U0INTRUDER", channel_id=OPS)  # refused, shows nothing
    slack.command("pending")
    slack_fake.wait_for("response_url", lambda c: "old.example" in str(c.args.get("blocks")))
    slack.block_action("deletion_cancel", value=str(scheduled.id), user_id="U0INTRUDER")
    refused = slack_fake.wait_for("response_url", lambda c: "cancel a deletion" in c.args.get("text", ""))
    assert "Only purelyops admins can cancel a deletion" in refused.args["text"]
    assert rows(rt, PendingDeletion)[0].status == "pending"
    refusals = rows(rt, AuditEntry, AuditEntry.result == "refused")
    assert [(a.actor_id, a.target) for a in refusals] == [("U0INTRUDER", "/pm pending"),
                                                          ("U0INTRUDER", "cancel a deletion")]


def test_non_admin_commands_are_refused_and_audited(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("pending", user_id="U0NOBODY")
    refused = slack_fake.wait_for("response_url")
    assert "Only purelyops viewers and admins can run `/pm pending`" in refused.args["text"]
    assert rows(rt, AuditEntry)[0].result == "refused"


def test_due_deletion_runs_in_a_real_worker(rt: Runtime, settings, slack_fake: FakeSlack,
                                            purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_user_direct("ann@gone.example")
    purelymail_fake.add_user_direct("ann@kept.example")
    with session_scope(rt.database_url) as session:
        session.add_all([Domain(name="gone.example"),
                         Mailbox(address="ann@gone.example", local_part="ann", domain="gone.example"),
                         Mailbox(address="ann@kept.example", local_part="ann", domain="kept.example")])
    deletions.schedule(rt, kind="domain", target="gone.example", actor_id=ADMIN, channel_id=OPS,
                       delay=timedelta(seconds=-1))
    deletions.schedule(rt, kind="user", target="ann@kept.example", actor_id=ADMIN)  # not due yet

    job = next(p for p in periodic_jobs(settings) if p.func.__name__ == "run_due_deletions")
    assert job.interval == 60
    Queue(job.queue, connection=rt.redis).enqueue(job.func)
    result = run_burst_worker(settings)
    assert result.returncode == 0, result.stderr

    assert "gone.example" not in purelymail_fake.domains, [(d.target, d.status, d.error)
                                                           for d in rows(rt, PendingDeletion)]
    assert "ann@kept.example" in purelymail_fake.users
    assert [m.address for m in rows(rt, Mailbox)] == ["ann@kept.example"]
    assert rows(rt, Domain) == []
    statuses = {d.target: d.status for d in rows(rt, PendingDeletion)}
    assert statuses == {"gone.example": "done", "ann@kept.example": "pending"}
    posted = slack_fake.wait_for("chat.postMessage")
    assert posted.args["channel"] == OPS and "gone.example was deleted" in posted.args["text"]


def _due_now(rt: Runtime) -> None:
    """The back-off has passed (moved, rather than slept through)."""
    with session_scope(rt.database_url) as session:
        session.execute(update(PendingDeletion).where(PendingDeletion.status == "pending")
                        .values(due_at=func.now() - timedelta(seconds=1)))


def test_a_deletion_purelymail_never_answers_is_retried_then_reported_and_alerted_once(
        rt: Runtime, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    """Issue 18, item 8: a 5xx is tried again with back-off (not failed at once), and only
    when it gives up is it said, once in the channel and once in the alert channel."""
    purelymail_fake.add_domain_direct("stuck.example")
    purelymail_fake.fail_5xx = {"deleteDomain": 100}
    deletions.schedule(rt, kind="domain", target="stuck.example", actor_id=ADMIN, channel_id=OPS,
                       delay=timedelta(seconds=-1))
    for tries in range(1, deletions.MAX_TRIES):
        assert deletions.run_due(rt) == []  # not finished: tried again later
        [row] = rows(rt, PendingDeletion)
        assert (row.status, row.tries) == ("pending", tries)
        assert deletions.run_due(rt) == []  # not due again before its back-off
        _due_now(rt)
    finished = deletions.run_due(rt)
    assert [d.status for d in finished] == ["failed"]
    assert "PurelyMail is having trouble" in finished[0].error and "gave up" in finished[0].error
    assert "stuck.example" in purelymail_fake.domains
    assert [a.result for a in rows(rt, AuditEntry, AuditEntry.action == "domain.delete")] == ["failed"]

    for deletion in finished:
        alerts.deletion_outcome(rt, deletion)
    channels = [c.args["channel"] for c in slack_fake.calls_to("chat.postMessage")]
    assert channels == [OPS, rt.settings.alert_channel]
    assert "could not be deleted" in slack_fake.calls_to("chat.postMessage")[1].args["text"]


def test_a_deletion_whose_answer_was_lost_is_read_back_not_repeated(
        rt: Runtime, purelymail_fake: FakePurelyMail) -> None:
    """PurelyMail deleted the mailbox but its answer never arrived whole: the next try reads
    that it is gone and ends done, without deleting again."""
    purelymail_fake.add_user_direct("ann@example.com")
    purelymail_fake.malformed_json = {"deleteUser": 1}
    deletions.schedule(rt, kind="user", target="ann@example.com", actor_id=ADMIN, delay=timedelta(seconds=-1))
    assert deletions.run_due(rt) == []
    _due_now(rt)
    finished = deletions.run_due(rt)
    assert [(d.status, d.error) for d in finished] == [("done", None)]
    assert [op for op, _ in purelymail_fake.calls].count("deleteUser") == 1


def test_a_worker_whose_clock_runs_a_day_ahead_deletes_nothing_early(
        rt: Runtime, settings, purelymail_fake: FakePurelyMail) -> None:
    """Issue 18, item 8: due is by the database's clock. A worker 25 hours ahead (Debian's
    faketime) runs the due deletions: the one asked for now waits its 24 hours."""
    if shutil.which("faketime") is None:
        pytest.skip("faketime is not installed")
    purelymail_fake.add_user_direct("ann@example.com")
    deletions.schedule(rt, kind="user", target="ann@example.com", actor_id=ADMIN)
    site = os.pathsep.join([str(ROOT / "tests" / "faketime_site"), str(ROOT)])  # time.sleep despite libfaketime
    env = process_env(settings, PYTHONPATH=site, DONT_FAKE_MONOTONIC="1")
    result = subprocess.run(["faketime", "-f", "+25h", sys.executable, "-c",
                             "from workers.deletions import run_due_deletions; print(run_due_deletions())"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"
    assert "ann@example.com" in purelymail_fake.users
    assert [d.status for d in rows(rt, PendingDeletion)] == ["pending"]


def test_scheduling_keeps_working_once_the_database_driver_prepares_the_statement(rt: Runtime) -> None:
    # psycopg prepares a statement on the server after a few runs; the partial index must
    # still be found then (its condition written out, not passed as a parameter).
    for n in range(20):
        assert deletions.schedule(rt, kind="user", target=f"u{n}@example.com", actor_id=ADMIN).created
    assert len(rows(rt, PendingDeletion)) == 20
