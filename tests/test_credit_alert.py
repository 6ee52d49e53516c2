"""The daily credit check alerts once below the threshold, and again only after recovering."""

from __future__ import annotations

from decimal import Decimal

import pytest

from purelyops.money import format_money
from purelyops.runtime import Runtime
from tests.conftest import ADMIN, ALERTS
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver
from workers.credit import check_credit
from workers.periodic import periodic_jobs


def test_one_alert_per_fall_below_the_threshold(rt: Runtime, settings, slack_fake: FakeSlack,
                                               purelymail_fake: FakePurelyMail) -> None:
    assert any(p.func.__name__ == "run_credit_check" and p.interval == 86400 for p in periodic_jobs(settings))
    outcomes = []
    for credit in ("5.00", "1.99", "1.50", "2.01", "1.00"):
        purelymail_fake.credit = credit  # PurelyMail sends it as a decimal string
        outcomes.append(check_credit(rt))
    assert outcomes == ["ok", "alerted", "low", "recovered", "alerted"]
    texts = [m.text for m in slack_fake.messages(ALERTS)]
    assert len(texts) == 2 and "$1.99, below the $2.00 threshold" in texts[0]


def test_the_alert_the_credit_command_and_home_show_the_same_money(
        rt: Runtime, slack: SlackDriver, slack_fake: FakeSlack, purelymail_fake: FakePurelyMail) -> None:
    purelymail_fake.credit = "1.999"
    assert check_credit(rt) == "alerted"
    alert = slack_fake.messages(ALERTS)[0].text
    assert "credit is down to $1.99, below the $2.00 threshold" in alert

    slack.command("credit")
    answer = slack_fake.wait_for("response_url")
    assert answer.args["text"] == "PurelyMail account credit: $1.99"
    assert "Below $2.00" in str(answer.args["blocks"])

    slack.event({"type": "app_home_opened", "user": ADMIN, "channel": "D0HOME", "tab": "home"})
    assert "*Credit*\\n$1.99 :warning: low" in str(slack_fake.wait_for("views.publish").args["view"])


@pytest.mark.parametrize(("amount", "shown"), [
    ("1.999", "$1.99"), ("2", "$2.00"), ("0", "$0.00"), ("0.009", "$0.00"), ("1234.5", "$1,234.50"),
    ("-0.001", "-$0.01"), ("-5.5", "-$5.50"), ("19.16079948301373180045878412899744", "$19.16"),
])
def test_money_is_rounded_down_to_the_cent(amount: str, shown: str) -> None:
    assert format_money(Decimal(amount)) == shown
