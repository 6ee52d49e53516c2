"""The daily credit check alerts once below the threshold, and again only after recovering."""

from __future__ import annotations

from purelyops.runtime import Runtime
from tests.conftest import ALERTS
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from workers.credit import check_credit
from workers.schedule import periodic_jobs


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
