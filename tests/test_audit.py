"""`audit`: every mutation and refusal can be read back, filtered and paged."""

from __future__ import annotations

from datetime import timedelta

from db.models import AuditEntry
from db.session import session_scope
from purelyops import audit
from tests.conftest import ADMIN
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver


def test_audit_shows_mutations_and_refusals(rt, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    from purelyops import deletions

    deletions.schedule(rt, kind="domain", target="old.example", actor_id=ADMIN, delay=timedelta(hours=24))
    slack.command("pending", user_id="U0NOBODY")
    slack_fake.wait_for("response_url")
    slack.command("audit")
    shown = str(slack_fake.wait_for("response_url", lambda c: "Audit log" in str(c.args.get("blocks"))).args["blocks"])
    assert "domain.delete.schedule" in shown and "old.example" in shown
    assert "refused" in shown and "U0NOBODY" in shown


def test_audit_filters_by_text_user_and_time(rt, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    with session_scope(rt.database_url) as session:
        audit.record(session, actor_id="U0ALICE01", action="user.create", target="ann@a.example")
        audit.record(session, actor_id="U0BOB0001", action="user.create", target="ben@b.example")
    with session_scope(rt.database_url) as session:
        old = AuditEntry(actor_id="U0ALICE01", action="user.create", target="old@a.example", result="ok")
        session.add(old)
        session.flush()
        session.execute(AuditEntry.__table__.update().where(AuditEntry.id == old.id)
                        .values(at=AuditEntry.at - timedelta(days=30)))

    slack.command("audit a.example user:<@U0ALICE01|alice> since:7d")
    blocks = str(slack_fake.wait_for("response_url").args["blocks"])
    assert "ann@a.example" in blocks
    assert "ben@b.example" not in blocks and "old@a.example" not in blocks


def test_audit_pages_with_an_older_button(rt, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    with session_scope(rt.database_url) as session:
        for n in range(20):
            audit.record(session, actor_id=ADMIN, action="user.create", target=f"u{n:02d}@x.example")
    slack.command("audit")
    first = str(slack_fake.wait_for("response_url").args["blocks"])
    assert "u19@x.example" in first and "u00@x.example" not in first
    slack.block_action("audit_older")
    second = slack_fake.wait_for("response_url", lambda c: c.args.get("replace_original") is True)
    assert "u00@x.example" in str(second.args["blocks"]) and "u19@x.example" not in str(second.args["blocks"])


def test_bad_filters_get_specific_messages(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("audit since:forever")
    assert "since: takes a number and a unit" in slack_fake.wait_for("response_url").args["text"]
    slack.command("audit user:bob")
    assert "is not a user" in slack_fake.wait_for("response_url", lambda c: "user" in c.args["text"]).args["text"]


def test_only_admins_read_the_audit_log(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("audit", user_id="U0VIEWER1")
    assert "Only purelyops admins" in slack_fake.wait_for("response_url").args["text"]
