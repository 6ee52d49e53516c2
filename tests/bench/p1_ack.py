"""P1: how fast the bot acks slash commands under 50 concurrent signed requests.

Once for `/pm help`, and once for `/pm credit` while every PurelyMail answer is slowed
to 2 s: the ack must not wait for PurelyMail. Goal p99 ≤ 100 ms (Slack allows 3 s).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from purelyops.runtime import Runtime
from purelyops.settings import Settings
from tests.bench.stats import percentile, report
from tests.conftest import SIGNING_SECRET, BotServer
from tests.fakes.purelymail_fake import FakePurelyMail
from tests.fakes.slack_fake import FakeSlack
from tests.slack_requests import SlackDriver

CONCURRENCY = 50


def burst(driver: SlackDriver, text: str) -> list[float]:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        responses = list(pool.map(lambda _: driver.command(text), range(CONCURRENCY)))
    assert all(r.status_code == 200 for r in responses), [r.status_code for r in responses]
    return [r.elapsed.total_seconds() for r in responses]


def wait_for_answers(slack: FakeSlack, count: int, timeout: float) -> float:
    start = time.monotonic()
    while len(slack.responses()) < count and time.monotonic() - start < timeout:
        time.sleep(0.05)
    return time.monotonic() - start


def run(settings: Settings, slack: FakeSlack, purelymail: FakePurelyMail) -> None:
    server = BotServer(Runtime(settings))
    try:
        driver = SlackDriver(server.url + "/slack/events", SIGNING_SECRET, slack)
        burst(driver, "help")  # warm-up
        slack.reset()
        help_times = burst(driver, "help")
        wait_for_answers(slack, CONCURRENCY, 10)
        print("P1 " + report("ack /pm help, 50 concurrent", help_times))

        slack.reset()
        purelymail.latency = 2.0
        credit_times = burst(driver, "credit")
        answered = wait_for_answers(slack, CONCURRENCY, 30)
        print("P1 " + report("ack /pm credit (PurelyMail slowed to 2 s), 50 concurrent", credit_times))
        print(f"P1 all {len(slack.responses())} credit answers arrived {answered:.1f} s after the burst")
        worst = max(percentile(help_times, 99), percentile(credit_times, 99)) * 1000
        print(f"P1 goal p99 <= 100 ms: {'met' if worst <= 100 else 'NOT met'} (worst p99 {worst:.1f} ms)")
    finally:
        purelymail.latency = 0.0
        server.close()
