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

# Every argument of every command, with the names, numbers and addresses people mistype or
# attackers craft. None may reach PurelyMail: each is refused with a specific answer first.
BAD_DOMAINS = [("''", "give a domain name"), ("http://x.com/", "without http://"), ("a@b.com", "the domain is b.com"),
               ("-x.com", "hyphen"), ("x..com", "empty part"), ("x_y.com", "cannot have"), ("localhost", "no dot"),
               ("1.2.3.4", "IP address"), ("x" * 64 + ".com", "at most 63"), (".".join(["a" * 60] * 5), "at most 253"),
               ("'<!channel>.com'", "cannot have"), ("'ex ample.com'", "cannot have")]
for sub in ("domain add", "domain check", "domain recheck", "domain remove"):
    BAD_COMMANDS += [(f"{sub} {name}", words) for name, words in BAD_DOMAINS]
BAD_ADDRESSES = [("nobody", "not an email address"), ("a@b@c.com", "not an email address"),
                 ("-rf@x.com", "letters, digits"), ("'<!channel>@x.com'", "letters, digits"),
                 ("a@-x.com", "hyphen"), ("a..b@x.com", "two dots"), (LONG + "@x.com", "at most 64"),
                 ("'a b@x.com'", "letters, digits"), ("ålice@x.com", "letters, digits"), ("a@x", "no dot")]
for sub in ("mailbox show", "mailbox delete"):
    BAD_COMMANDS += [(f"{sub} {address}", words) for address, words in BAD_ADDRESSES]
BAD_COMMANDS += [
    ("mailbox show", "give one address"),
    ("mailbox show a@x.com b@x.com", "give one address"),
    ("mailbox list domain:-x.com", "the domain filter is wrong"),
    ("mailbox list domain:", "the domain filter is wrong"),
    ("mailbox list " + "y" * 400, "at most 320"),
    ("rule list http://x.com", "not a domain name"),
    ("rule list a@b.com", "not a domain name"),
    ("rule remove", "give the rule's number"),
    ("rule remove abc", "give the rule's number"),
    ("rule remove -1", "give the rule's number"),
    ("rule remove 1.5", "give the rule's number"),
    ("rule remove " + "9" * 40, "give the rule's number"),
    ("rule remove $(id)", "give the rule's number"),
    ("server remove", "give the server's name"),
    ("server remove nosuch", "no source server called nosuch"),
    ("server remove -rf", "no source server called -rf"),
    ("server test", "give the server's name"),
    ("server test '<!here>'", "no source server called &lt;!here&gt;"),
    ("server remove a b", "give the server's name"),
    ("jobs sideways", "no batch called sideways"),
    ("jobs " + LONG, "at most 80 characters"),
    ("jobs <!channel>", "no batch called &lt;!channel&gt;"),
    ("job", "give the migration's number"),
    ("job abc", "give the migration's number"),
    ("job -1", "give the migration's number"),
    ("job 99999999999", "give the migration's number"),
    ("job 4242", "There is no migration #4242"),
    ("migrate", "Add the old IMAP host first"),
    ("migrate bulk", "Add the old IMAP host first"),
    ("domain check a.com b.com", "give one domain name"),
    ("domain add a.com b.com", "give one domain name"),
]


def table_counts(rt) -> dict[str, int]:
    with session_scope(rt.database_url) as session:
        tables = [r[0] for r in session.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public' "
            "AND tablename NOT IN ('alembic_version', 'audit_log')"))]
        return {t: session.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}


@pytest.mark.parametrize(("command", "expected"), BAD_COMMANDS,
                         ids=[f"{i}-{c[:20]}" for i, (c, _) in enumerate(BAD_COMMANDS)])
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
