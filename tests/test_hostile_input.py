"""Hostile and careless input: every case gets a specific message and leaves no trace.

Each case is a slash command as someone might type it. The bot must ack, answer the
person with a message that says what is wrong, and change nothing: no PurelyMail call,
no new row (the audit log aside), no queued job, no traceback, no HTTP 500.
"""

from __future__ import annotations

import pytest
from rq import Queue
from sqlalchemy import text

from db.session import session_scope
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver
from workers.queues import ALL

LONG = "x" * 10_000
BAD_COMMANDS: list[tuple[str, str]] = [
    # (command text, what the answer must say)
    ("hlep", "Did you mean `help`?"),
    (LONG, "I don't know"),
    ("\x00", "I don't know"),
    ("<!channel>", "&lt;!channel&gt;"),
    ("'unterminated", "I don't know"),
    ("-rf /", "I don't know"),
    ("🙂", "I don't know"),
    ("audit since:0x", "since: takes a number"),
    ("audit user:<!here>", "is not a user"),
    ("audit " + LONG, "too long"),
]


def table_counts(rt) -> dict[str, int]:
    with session_scope(rt.database_url) as session:
        tables = [r[0] for r in session.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' AND tablename NOT IN ('alembic_version', 'audit_log')"))]
        return {t: session.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}


@pytest.mark.parametrize(("command", "expected"), BAD_COMMANDS, ids=[c[:20] for c, _ in BAD_COMMANDS])
def test_bad_command_is_answered_and_changes_nothing(command: str, expected: str, rt, slack: SlackDriver,
                                                     slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    before = table_counts(rt)
    response = slack.command(command)
    assert response.status_code == 200
    answer = slack_fake.wait_for("response_url")
    assert answer.ok, answer.errors
    assert answer.args["response_type"] == "ephemeral"
    assert expected in answer.args["text"]
    assert "Traceback" not in slack_fake.all_text()
    assert purelymail_fake.calls == []
    assert table_counts(rt) == before
    assert all(Queue(name, connection=rt.redis).count == 0 for name in ALL)
