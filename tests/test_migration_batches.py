"""Batches: `migrate bulk` answers with the CSV template; the batch message has a line per
mailbox (icon, source → destination, state, messages) and, past what it can show, keeps
the mailboxes that need a look and counts the rest by state."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot.blocks import migrations as blocks
from db.models import MigrationBatch, MigrationJob, SourceServer
from db.session import session_scope
from purelyops import migration_csv, migrations
from purelyops.runtime import Runtime
from tests.conftest import wait_until
from tests.fakes.slack_fake import FakeSlack
from tests.fakes.slack_fake.block_kit import check_message_blocks
from tests.migration_steps import add_server, open_modal
from tests.slack_requests import SlackDriver


@pytest.fixture(autouse=True)
def slack_accepts_everything(slack_fake: FakeSlack) -> Iterator[None]:
    yield
    assert [(c.method, c.error, c.errors) for c in slack_fake.rejected] == []


def job(i: int, status: str, done: int = 0, total: int = 0, verdict: str | None = None) -> MigrationJob:
    return MigrationJob(id=i, batch_id=1, source_host="imap.old.example", source_port=993, source_security="tls",
                        source_email=f"user{i}@old.example", dest_email=f"user{i}@new.example", dry_run=False,
                        status=status, msgs_done=done, msgs_total=total, verdict=verdict, channel_id="C0OPS0001",
                        created_by="U0ADMIN01")


def texts(built: list[dict]) -> str:
    return "\n".join(b["text"]["text"] for b in built if b["type"] == "section")


def mailbox_lines(built: list[dict]) -> list[str]:
    return [line for line in texts(built).splitlines() if re.match(r"^:\w+: #\d+ ", line)]


# ---- the builder ------------------------------------------------------------------------------


def test_a_batch_message_has_a_line_per_mailbox() -> None:
    jobs = [job(1, "done", 500, 500), job(2, "running", 120, 3000), job(3, "queued"),
            job(4, "failed", 0, 0, "the source server refused the password for user4@old.example"),
            job(5, "cancelled", 10, 80)]
    text, built = blocks.batch_blocks(MigrationBatch(id=1, name="wave 1"), jobs)
    assert check_message_blocks(built) == []
    assert text == "Batch wave 1: 3 of 5 migrations finished"
    assert mailbox_lines(built) == [
        ":white_check_mark: #1 `user1@old.example` → `user1@new.example` · done · 500 of 500 messages",
        ":arrows_counterclockwise: #2 `user2@old.example` → `user2@new.example` · running · 120 of 3,000 messages",
        ":hourglass: #3 `user3@old.example` → `user3@new.example` · queued",
        ":x: #4 `user4@old.example` → `user4@new.example` · failed: the source server refused the password for "
        "user4@old.example",
        ":no_entry_sign: #5 `user5@old.example` → `user5@new.example` · cancelled · 10 of 80 messages",
    ]
    assert "more" not in texts(built)


def test_300_mailboxes_collapse_to_what_needs_a_look_and_count_the_rest() -> None:
    states = {7: "failed", 150: "interrupted", 299: "failed", 20: "running", 21: "running", 290: "queued"}
    jobs = [job(i, states.get(i, "done"), 40, 40) for i in range(1, 301)]
    _, built = blocks.batch_blocks(MigrationBatch(id=1, name="everyone"), jobs)
    assert check_message_blocks(built) == [] and len(built) <= 50
    lines = mailbox_lines(built)
    assert len(lines) == blocks.BATCH_LINES
    shown = [int(re.match(r"^:\w+: #(\d+) ", line).group(1)) for line in lines]
    assert shown == sorted(shown)  # in the batch's order
    assert set(states) <= set(shown)  # every failed, interrupted, running and queued one
    assert texts(built).endswith(f"…and {300 - blocks.BATCH_LINES} more: :white_check_mark: 200 done")
    head = built[0]["text"]["text"]
    assert ":white_check_mark: 294 done · :x: 2 failed" in head  # the counts of the whole batch


def test_past_the_blocks_a_message_holds_the_rest_is_counted() -> None:
    long = "x" * 60
    jobs = [job(i, "failed", verdict=f"{long} {i}") for i in range(1, 80)]
    sections = blocks.batch_mailbox_sections(jobs, max_blocks=3)
    assert len(sections) <= 3 and check_message_blocks(sections) == []
    shown = len(mailbox_lines(sections))
    assert 0 < shown < 79
    assert texts(sections).endswith(f"…and {79 - shown} more: :x: {79 - shown} failed")


# ---- through Slack ------------------------------------------------------------------------------


def test_migrate_bulk_replies_with_the_csv_template(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    add_server(slack, slack_fake)
    open_modal(slack, slack_fake, "migrate bulk", "migrate_bulk")
    reply = slack_fake.wait_for("response_url", lambda c: "The CSV for migrate bulk" in c.args.get("text", ""))
    assert reply.args.get("response_type") == "ephemeral"  # only the admin sees it; nothing stays in the channel
    assert not slack_fake.calls_to("files.getUploadURLExternal")
    shown = texts(reply.args["blocks"])
    csv_text = html.unescape(re.search(r"```(.*?)```", shown, re.S).group(1))
    assert csv_text.splitlines() == ["source_email,source_password,dest_email,dest_password",
                                     "alice@old.example,alices-old-password,alice@example.com,"]
    row, = migration_csv.parse(csv_text)  # the template itself is a valid batch of one
    assert (row.source_email, row.dest_email, row.dest_password) == ("alice@old.example", "alice@example.com", "")


def test_a_batch_of_300_posts_one_collapsed_message(rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    add_server(slack, slack_fake)
    open_modal(slack, slack_fake, "migrate bulk", "migrate_bulk")
    csv_text = ",".join(migration_csv.HEADER) + "\r\n" + "".join(
        f"user{i}@old.example,pw-{i}-secret,user{i}@new.example,\r\n" for i in range(300))
    upload = slack_fake.add_user_file("everyone.csv", csv_text.encode())
    with session_scope(rt.database_url) as session:
        server = str(session.scalars(select(SourceServer.id)).one())
    slack.view_submission("migrate_bulk", {"name": {"value": "everyone"}, "server": {"value": server},
                                           "file": {"value": [upload]}})
    posted = slack_fake.wait_for("chat.postMessage", lambda c: "Batch everyone" in c.args.get("text", ""), timeout=30)
    wait_until(lambda: len(migrations.list_jobs(rt, "queued", limit=1000)) == 300, 10, "300 queued jobs")
    built = posted.args["blocks"]
    assert len(built) <= 50
    lines = mailbox_lines(built)
    assert len(lines) == blocks.BATCH_LINES
    assert lines[0] == ":hourglass: #1 `user0@old.example` → `user0@new.example` · queued (dry run)"
    assert texts(built).endswith("…and 200 more: :hourglass: 200 queued")
    assert not [c for c in slack_fake.calls if "pw-1-secret" in str(c.args)]


def test_an_incomplete_job_is_counted_apart_from_done_and_says_what_is_missing() -> None:
    """Issue 17: a job whose check found mail missing is not done, in the batch message too."""
    jobs = [job(1, "done", 500, 500),
            job(2, "incomplete", 8, 14, "6 of 14 message(s) are not at the destination, in 1 folder(s): INBOX (6 of "
                                        "14 missing)")]
    text, built = blocks.batch_blocks(MigrationBatch(id=1, name="wave 1"), jobs)
    assert check_message_blocks(built) == []
    assert text == "Batch wave 1: 2 of 2 migrations finished"
    shown = texts(built)
    assert ":white_check_mark: 1 done · :heavy_exclamation_mark: 1 incomplete" in shown
    assert ("#2 `user2@old.example` → `user2@new.example` · incomplete · 8 of 14 messages: 6 of 14 message(s) are "
            "not at the destination") in shown
    assert "Re-run failed" in str(built)  # it offers to try the incomplete one again
    _, status = blocks.status_blocks(jobs[1])
    assert [b["text"]["text"] for b in status[1]["elements"]][:1] == ["Sync again"]
