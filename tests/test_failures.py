"""What an admin hears, and what the log says, when something fails: PurelyMail slow or
failing, a bug in a handler, hostile words in a failure. Signed Slack requests in; Slack
calls and log records out."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator

import pytest

from purelyops import deletions, purelymail
from purelyops.purelymail import PurelyMailClient, SlowToAnswer
from purelyops.runtime import Runtime
from purelyops.throttle import Throttle
from tests.fakes.purelymail_fake import FakePurelyMail, Rejected
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

OURS = ("bot", "purelyops", "workers")


@pytest.fixture
def slack_refusals() -> list[tuple[str, str]]:
    """(method, error) pairs a test makes Slack refuse on purpose."""
    return []


@pytest.fixture(autouse=True)
def slack_accepts_everything(slack_fake: FakeSlack, slack_refusals: list[tuple[str, str]]) -> Iterator[None]:
    yield
    assert [(c.method, c.error, c.errors) for c in slack_fake.rejected
            if (c.method, c.error) not in slack_refusals] == []


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def ours(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Our own log records at INFO or above (not Bolt's, the test server's or the fakes')."""
    return [r for r in caplog.records if r.name.split(".")[0] in OURS and r.levelno >= logging.INFO]


def reply_to(slack_fake: FakeSlack, words: str, timeout: float = 15):
    return slack_fake.wait_for("response_url", lambda c: words in c.args.get("text", ""), timeout=timeout)


# ---- PurelyMail slow: one deadline for an interactive request -----------------------------


def test_credit_with_purelymail_taking_40_s_is_answered_within_12_s(
        slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.latency = 40
    started = time.monotonic()
    slack.command("credit")
    reply = reply_to(slack_fake, "slow to answer", timeout=20)
    assert time.monotonic() - started < 13
    assert "checkAccountCredit" in reply.args["text"] and "try again in a minute" in reply.args["text"]
    assert len(purelymail_fake.calls_to("checkAccountCredit")) == 1  # no retry after the deadline


def test_a_slow_change_says_it_may_or_may_not_have_been_done_and_how_to_check(
        slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")
    purelymail_fake.latency = 40
    started = time.monotonic()
    slack.command("domain recheck example.com")
    reply = reply_to(slack_fake, "slow to answer", timeout=20)
    assert time.monotonic() - started < 13
    text = reply.args["text"]
    assert "may or may not have been done" in text and "`domain recheck example.com`" in text


def test_under_a_deadline_reads_retry_within_it_and_the_throttle_wait_counts(
        rt: Runtime, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.fail_5xx = {"listDomains": 1}
    with purelymail.deadline(5):  # a quick 502 leaves time for the retry
        assert rt.purelymail.list_domains() == []
    throttle = Throttle(rt.redis, "test:throttle:deadline", rate_per_s=0.1, burst=1)  # one request per 10 s
    client = PurelyMailClient(purelymail_fake.url, rt.settings.purelymail_api_token, throttle=throttle)
    client.get_ownership_code()
    started = time.monotonic()
    with purelymail.deadline(1), pytest.raises(SlowToAnswer) as raised:
        client.add_domain("example.org")
    assert time.monotonic() - started < 0.5  # no slot within the deadline: says so at once
    assert raised.value.sent is False and "was not sent" in str(raised.value)
    assert purelymail_fake.calls_to("addDomain") == []
    client.close()


def test_jobs_keep_the_longer_retry_policy(rt: Runtime, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.latency = 1.2
    client = PurelyMailClient(purelymail_fake.url, rt.settings.purelymail_api_token, timeout=1)
    with pytest.raises(purelymail.Timeout) as raised:
        client.check_account_credit()  # no deadline: every attempt gets its own timeout
    assert not isinstance(raised.value, SlowToAnswer)
    assert len(purelymail_fake.calls_to("checkAccountCredit")) == 3
    client.close()


# ---- expected failures: one log line; bugs: an error id -----------------------------------


def test_a_failing_purelymail_call_is_one_log_line_without_traceback(
        slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail,
        log: pytest.LogCaptureFixture) -> None:
    purelymail_fake.fail_5xx = {"checkAccountCredit": 10}
    slack.command("credit")
    reply = reply_to(slack_fake, "PurelyMail is having trouble (HTTP 502)")
    assert "error id" not in reply.args["text"]
    time.sleep(0.2)  # the log line is written before the reply is sent; nothing else follows
    records = ours(log)
    assert len(records) == 1, [r.getMessage() for r in records]
    line = records[0].getMessage()
    assert "/pm credit" in line and "checkAccountCredit" in line and "HTTP 502" in line
    assert records[0].exc_info is None and "Traceback" not in log.text


def test_a_bug_in_a_command_gives_an_error_id_that_finds_its_log_line(
        slack: SlackDriver, slack_fake: FakeSlack, log: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rt: Runtime) -> list:
        raise KeyError("internal detail")

    monkeypatch.setattr(deletions, "pending", broken)
    slack.command("pending")
    text = reply_to(slack_fake, "Something unexpected went wrong").args["text"]
    error_id = re.search(r"error id ([0-9a-f]{8})\b", text).group(1)
    assert "internal detail" not in text and "KeyError" not in text
    [record] = [r for r in ours(log) if error_id in r.getMessage()]
    assert record.levelno == logging.ERROR and record.exc_info and "/pm pending" in record.getMessage()
    assert "internal detail" in log.text  # the traceback is in the log, for whoever looks it up


def test_a_bug_behind_a_button_is_reported_by_the_same_guard(
        slack: SlackDriver, slack_fake: FakeSlack, log: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rt: Runtime, deletion_id: int, actor_id: str):
        raise AttributeError("no such thing")

    monkeypatch.setattr(deletions, "cancel", broken)
    slack.block_action("deletion_cancel", value="1")
    text = reply_to(slack_fake, "Something unexpected went wrong").args["text"]
    error_id = re.search(r"error id ([0-9a-f]{8})\b", text).group(1)
    assert any(error_id in r.getMessage() and r.exc_info for r in ours(log))


def test_a_failure_text_is_escaped(slack: SlackDriver, slack_fake: FakeSlack,
                                   purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.add_domain_direct("example.com")

    def hostile(name: str) -> None:
        raise Rejected("<!channel> *urgent*: see <https://evil.example|your bank> & more")

    purelymail_fake.dns_rechecker = hostile
    slack.command("domain recheck example.com")
    reply = reply_to(slack_fake, "PurelyMail refused updateDomainSettings")
    text = reply.args["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text and "&lt;https://evil.example|" in text
    assert "&amp; more" in text
    [block] = reply.args["blocks"]
    assert block["text"]["type"] == "plain_text"  # shown as typed: no ping, link or bold
    assert "<!channel> *urgent*" in block["text"]["text"]


def test_the_refusal_is_audited_once_by_the_same_guard_for_commands_and_buttons(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    from sqlalchemy import select

    from db.models import AuditEntry
    from db.session import session_scope

    slack.command("pending", user_id="U0STRANGER")
    reply_to(slack_fake, "Only purelyops viewers and admins can run `/pm pending`")
    slack.block_action("deletion_cancel", value="1", user_id="U0STRANGER")
    slack_fake.wait_for("response_url",
                        lambda c: "Only purelyops admins can cancel a deletion" in c.args.get("text", ""))
    with session_scope(rt.database_url) as session:
        entries = [(e.actor_id, e.action, e.target)
                   for e in session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert entries == [("U0STRANGER", "refused", "/pm pending"), ("U0STRANGER", "refused", "cancel a deletion")]


def test_a_job_failing_at_purelymail_is_one_log_line_in_the_worker(
        rt: Runtime, settings, purelymail_fake: FakePurelyMail) -> None:
    from rq import Queue

    from tests.conftest import run_burst_worker
    from workers.credit import run_credit_check

    purelymail_fake.fail_5xx = {"checkAccountCredit": 10}
    Queue("default", connection=rt.redis).enqueue(run_credit_check)
    result = run_burst_worker(settings)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "checkAccountCredit" in line]
    assert len(lines) == 1 and "HTTP 502" in lines[0] and "run_credit_check" in lines[0]
    assert "Traceback" not in result.stderr
    assert len(purelymail_fake.calls_to("checkAccountCredit")) == 3  # a job keeps its retries


# ---- a generated password that Slack will not show ephemerally ----------------------------


@pytest.mark.parametrize("flow", ["add", "reset"])
def test_a_password_slack_will_not_show_is_never_sent_as_a_direct_message(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail,
        slack_refusals: list[tuple[str, str]], flow: str) -> None:
    from purelyops import domains, mailboxes
    from tests.conftest import ADMIN, OPS

    purelymail_fake.add_domain_direct("example.com")
    purelymail_fake.add_user_direct("bob@example.com")
    domains.sync_from_purelymail(rt)
    mailboxes.sync(rt)
    slack_fake.not_member_of.add(OPS)  # /pm works anywhere; the bot's own posts need it in the channel
    slack_refusals.append(("chat.postEphemeral", "not_in_channel"))
    if flow == "add":
        slack.command("mailbox add")
        slack_fake.wait_for("views.open")
        slack.view_submission("user_add", {"domain": {"value": "example.com"}, "local_part": {"value": "alice"}})
        address = "alice@example.com"
    else:
        address = "bob@example.com"
        slack.command(f"mailbox show {address}")  # answered through the response URL: fine in any channel
        reply_to(slack_fake, address)
        slack.block_action("user_reset_password", value=address)
        slack_fake.wait_for("views.open")
        slack.view_submission("user_reset_password", {})
    told = slack_fake.wait_for("views.update", lambda c: "never sent as a direct message" in str(c.args["view"]),
                               timeout=15)
    words = str(told.args["view"])
    assert f"mailbox show {address}" in words and "Reset password" in words and "not_in_channel" in words

    password = purelymail_fake.users[address].password
    tried = slack_fake.wait_for("chat.postEphemeral", lambda c: password in str(c.args))
    assert not tried.ok and tried.args["user"] == ADMIN
    assert [c.method for c in slack_fake.calls if password in str(c.args)] == ["chat.postEphemeral"]
    assert slack_fake.calls_to("conversations.open") == []
    dms = [c for c in slack_fake.calls_to("chat.postMessage") if str(c.args.get("channel", ""))[:1] in "DUW"]
    assert dms == []
