"""`/pm credit`, and how PurelyMail failures reach the admin in words."""

from __future__ import annotations

import time

import pytest

from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver


def test_credit_is_shown_exactly(slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.credit = "19.16079948301373180045878412899744"
    slack.command("credit")
    call = slack_fake.wait_for("response_url")
    assert call.args["text"] == "PurelyMail account credit: $19.16"
    assert "Below" not in str(call.args["blocks"])


def test_low_credit_is_flagged(slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.credit = "1.999999999999999999999999999"
    slack.command("credit")
    call = slack_fake.wait_for("response_url")
    assert call.args["text"] == "PurelyMail account credit: $1.99"
    assert "Below $2.00" in str(call.args["blocks"])


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("token", "PurelyMail rejected the API token"),
        ("5xx", "PurelyMail is having trouble"),
        ("json", "could not read"),
    ],
)
def test_purelymail_failures_are_told_in_words(fault: str, words: str, slack: SlackDriver, slack_fake: FakeSlack,
                                               purelymail_fake: FakePurelyMail, rt) -> None:
    if fault == "token":
        purelymail_fake.token = "another-token"
    elif fault == "5xx":
        purelymail_fake.fail_5xx = {"*": 10}
    else:
        purelymail_fake.malformed_json = {"*": 10}
    slack.command("credit")
    call = slack_fake.wait_for("response_url", timeout=15)
    assert call.args["response_type"] == "ephemeral"
    assert words in call.args["text"]
    assert "Traceback" not in call.args["text"]
    assert rt.settings.purelymail_api_token not in call.args["text"]


def test_slow_purelymail_never_delays_the_ack(slack: SlackDriver, slack_fake: FakeSlack,
                                              purelymail_fake: FakePurelyMail) -> None:
    """More slow commands than there are threads for slow work: every one is still acked at
    once, and every one is answered when PurelyMail answers (the excess waits its turn)."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.work import WORK_THREADS

    count = WORK_THREADS + 8
    purelymail_fake.latency = 2.5
    with ThreadPoolExecutor(count) as pool:
        responses = list(pool.map(lambda _: slack.command("credit"), range(count)))
    assert [r.status_code for r in responses] == [200] * count
    assert max(r.elapsed.total_seconds() for r in responses) < 2.0
    deadline = time.monotonic() + 30
    while len(slack_fake.responses()) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(slack_fake.responses()) == count
