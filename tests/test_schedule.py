"""USER_SYNC_CRON is read on the wall clock in TZ, and every next run is computed when it is
needed: across a daylight-saving change the nightly sync stays at its local time, without
restarting the scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from rq import Queue
from rq import cron as rq_cron

from purelyops.runtime import Runtime
from purelyops.settings import SettingsError
from tests.conftest import make_settings
from workers.periodic import next_run
from workers.scheduler import build_scheduler

BERLIN = ZoneInfo("Europe/Berlin")  # clocks go 02:00 → 03:00 on 2026-03-29, 03:00 → 02:00 on 2026-10-25
NEW_YORK = ZoneInfo("America/New_York")  # 02:00 → 03:00 on 2026-03-08, 02:00 → 01:00 on 2026-11-01
UTC = timezone.utc


def runs(expression: str, zone: ZoneInfo, start: datetime, count: int) -> list[datetime]:
    """The next `count` runs after `start`, each computed from the one before, in `zone`."""
    out = []
    moment = start
    for _ in range(count):
        moment = next_run(expression, zone, moment)
        assert moment.tzinfo is not None
        out.append(moment)
    return [m.astimezone(zone) for m in out]


def local(moments: list[datetime]) -> list[str]:
    return [m.strftime("%m-%d %H:%M %Z") for m in moments]


def test_a_daily_run_stays_at_two_local_across_both_changes() -> None:
    spring = runs("0 2 * * *", BERLIN, datetime(2026, 3, 26, 12, tzinfo=BERLIN), 5)
    assert local(spring) == ["03-27 02:00 CET", "03-28 02:00 CET",
                             "03-29 03:00 CEST",  # 02:00 does not exist that night: when the clock jumps past it
                             "03-30 02:00 CEST", "03-31 02:00 CEST"]
    autumn = runs("0 2 * * *", BERLIN, datetime(2026, 10, 22, 12, tzinfo=BERLIN), 5)
    assert local(autumn) == ["10-23 02:00 CEST", "10-24 02:00 CEST",
                             "10-25 02:00 CEST",  # 02:00 happens twice that night: it runs once
                             "10-26 02:00 CET", "10-27 02:00 CET"]
    # The same in UTC: the moment moves by the hour the clocks move.
    assert [m.astimezone(UTC).hour for m in autumn] == [0, 0, 0, 1, 1]


def test_other_expressions_keep_their_wall_clock_meaning() -> None:
    # Every 30 minutes: exactly 30 minutes apart in real time through both nights.
    for night in (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 10, 24, 22, tzinfo=UTC)):
        moments = [m.astimezone(UTC) for m in runs("*/30 * * * *", BERLIN, night, 12)]
        assert {b - a for a, b in zip(moments, moments[1:], strict=False)} == {timedelta(minutes=30)}
    # Hourly at :15 through the repeated hour runs in both passes.
    assert local(runs("15 * * * *", BERLIN, datetime(2026, 10, 25, 1, 30, tzinfo=BERLIN), 3)) == [
        "10-25 02:15 CEST", "10-25 02:15 CET", "10-25 03:15 CET"]
    # Mondays at 09:00, either side of the spring change.
    assert local(runs("0 9 * * 1", BERLIN, datetime(2026, 3, 20, tzinfo=BERLIN), 2)) == [
        "03-23 09:00 CET", "03-30 09:00 CEST"]
    # A time inside the skipped hour, and inside the repeated one.
    assert local(runs("30 2 * * *", BERLIN, datetime(2026, 3, 28, 12, tzinfo=BERLIN), 3)) == [
        "03-29 03:30 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]
    assert local(runs("30 2 * * *", BERLIN, datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)) == [
        "10-25 02:30 CEST", "10-26 02:30 CET"]
    # Another zone, other dates; and an alias.
    assert local(runs("0 2 * * *", NEW_YORK, datetime(2026, 3, 6, 12, tzinfo=NEW_YORK), 3)) == [
        "03-07 02:00 EST", "03-08 03:00 EDT", "03-09 02:00 EDT"]
    assert local(runs("30 1 * * *", NEW_YORK, datetime(2026, 10, 31, 12, tzinfo=NEW_YORK), 2)) == [
        "11-01 01:30 EDT", "11-02 01:30 EST"]
    assert local(runs("@daily", BERLIN, datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2)) == [
        "03-29 00:00 CET", "03-30 00:00 CEST"]
    # In UTC nothing moves.
    assert local(runs("0 2 * * *", ZoneInfo("UTC"), datetime(2026, 3, 28, tzinfo=UTC), 2)) == [
        "03-28 02:00 UTC", "03-29 02:00 UTC"]


@pytest.mark.parametrize(("start", "expected"), [
    (datetime(2026, 3, 27, 12, tzinfo=UTC), ["03-28 02:00 CET", "03-29 03:00 CEST", "03-30 02:00 CEST",
                                             "03-31 02:00 CEST"]),
    (datetime(2026, 10, 23, 12, tzinfo=UTC), ["10-24 02:00 CEST", "10-25 02:00 CEST", "10-26 02:00 CET",
                                              "10-27 02:00 CET"]),
])
def test_the_running_scheduler_follows_the_change_without_a_restart(
        start: datetime, expected: list[str], settings, database_url, redis_url, slack_fake, purelymail_fake,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """RQ's own scheduler loop, on a clock that moves to each next run: it is started once,
    before the change, and enqueues the mailbox sync at 02:00 local on both sides of it."""
    berlin = make_settings(database_url, redis_url, slack_fake, purelymail_fake, tz="Europe/Berlin")
    rt = Runtime(berlin)
    clock = [start]
    monkeypatch.setattr(rq_cron, "now", lambda: clock[0])
    scheduler = build_scheduler(rt)
    sync = next(job for job in scheduler.get_jobs() if job.func_name.endswith("run_mailbox_sync"))
    assert sync.cron == "0 2 * * *"

    enqueued_at = []
    for _ in expected:
        clock[0] = sync.next_enqueue_time
        assert scheduler.calculate_sleep_interval() == 0
        if sync in scheduler.enqueue_jobs():
            enqueued_at.append(clock[0])
    assert local([m.astimezone(BERLIN) for m in enqueued_at]) == expected
    queued = [job.func_name for job in Queue("default", connection=rt.redis).get_jobs()]
    assert queued.count("workers.mailbox_sync.run_mailbox_sync") == len(expected)


def test_a_cron_expression_that_never_runs_stops_start_up(database_url, redis_url, slack_fake,
                                                          purelymail_fake) -> None:
    with pytest.raises(SettingsError, match="USER_SYNC_CRON: names no date that exists"):
        make_settings(database_url, redis_url, slack_fake, purelymail_fake, user_sync_cron="0 2 31 2 *")
    with pytest.raises(SettingsError, match="USER_SYNC_CRON: is not a cron expression"):
        make_settings(database_url, redis_url, slack_fake, purelymail_fake, user_sync_cron="0 2 * *")
