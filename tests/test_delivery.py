"""Slack delivery semantics: what Slack sends again runs once."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlencode

from purelyops import deletions
from tests.conftest import ADMIN
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver


def test_a_retried_event_runs_once(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    event = {"type": "app_home_opened", "user": ADMIN, "channel": "D0HOME", "tab": "home"}
    assert slack.event(event, event_id="Ev0RETRY1").status_code == 200
    assert slack.event(event, event_id="Ev0RETRY1", retry_num=1).status_code == 200
    assert slack.event(event, event_id="Ev0RETRY1", retry_num=2, retry_reason="http_error").status_code == 200
    slack_fake.wait_for("views.publish")
    time.sleep(0.5)
    assert len(slack_fake.calls_to("views.publish")) == 1


def test_a_command_delivered_twice_is_answered_once(slack: SlackDriver, slack_fake: FakeSlack) -> None:
    slack.command("help")
    again = slack.post(urlencode(slack.last_payload).encode(), "application/x-www-form-urlencoded", retry_num=1)
    assert again.status_code == 200
    slack_fake.wait_for("response_url")
    time.sleep(0.5)
    assert len(slack_fake.calls_to("response_url")) == 1


def test_a_double_click_cancels_once(rt, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    scheduled = deletions.schedule(rt, kind="user", target="bob@example.com", actor_id=ADMIN,
                                   delay=timedelta(hours=24)).deletion
    slack.command("pending")
    slack_fake.wait_for("response_url", lambda c: "bob@example.com" in str(c.args.get("blocks")))
    slack.block_action("deletion_cancel", value=str(scheduled.id))
    slack.block_action("deletion_cancel", value=str(scheduled.id))
    slack_fake.wait_for("response_url", lambda c: "no longer pending" in c.args.get("text", ""))
    from db.models import AuditEntry
    from db.session import session_scope

    with session_scope(rt.database_url) as session:
        cancels = session.query(AuditEntry).filter(AuditEntry.action == "user.delete.cancel").count()
    assert cancels == 1
