"""When PostgreSQL or Redis is down, the admin is told what is wrong, in words."""

from __future__ import annotations

from purelyops.runtime import make_redis
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver


def test_database_down_is_told_in_words(rt, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    rt.settings = rt.settings.model_copy(update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:1/nothing"})
    slack.command("pending")
    text = slack_fake.wait_for("response_url", timeout=15).args["text"]
    assert "The database is not reachable right now" in text
    assert "Traceback" not in text and "psycopg" not in text


def test_redis_down_is_told_in_words(rt, slack: SlackDriver, slack_fake: FakeSlack) -> None:
    rt.__dict__["redis"] = make_redis("redis://127.0.0.1:1/0")
    rt.__dict__.pop("purelymail", None)  # its throttle is shared through Redis
    slack.command("credit")
    text = slack_fake.wait_for("response_url", timeout=15).args["text"]
    assert "Redis" in text and "127.0.0.1:1" in text
    assert "Traceback" not in text
