"""The periodic jobs that RQ's CronScheduler enqueues. Each capability adds its own here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from croniter import croniter

from purelyops.settings import Settings
from workers.credit import run_credit_check
from workers.deletions import run_due_deletions
from workers.dns_monitor import run_dns_monitor
from workers.gather import run_purge as run_gather_purge
from workers.mailbox_sync import run_mailbox_sync
from workers.migration import run_credential_purge, run_reconcile
from workers.queues import DEFAULT

# Longer than any daylight-saving change: how far a wall-clock time can move in UTC.
_LONGEST_SHIFT = timedelta(hours=3)


@dataclass(frozen=True)
class Periodic:
    func: Callable[[], object]
    queue: str = DEFAULT
    interval: int | None = None  # seconds
    cron: str | None = None  # on the wall clock in TZ


def next_run(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    """The first moment after `after` (aware) that the cron expression names on the wall
    clock in `zone`, in UTC. Computed for each run, so daylight-saving changes are followed.

    croniter walks the wall-clock times without a zone (its own arithmetic on zone-aware
    times puts the first run after an autumn change an hour late), and each is then placed
    in the zone:
    - a time the spring change skips (02:00-02:59 when clocks go 02:00 → 03:00) runs as if
      the clock had not jumped: 02:00 at 03:00, 02:30 at 03:30;
    - a time the autumn change repeats runs once, the first time, unless the expression
      runs every hour (a `*` hour field): then it runs in both passes, keeping its rhythm.
    """
    after = after.astimezone(timezone.utc)
    fields = expression.split()
    every_hour = expression.strip().lower() == "@hourly" or (len(fields) > 1 and fields[1].startswith("*"))
    wall_clock = croniter(expression, after.astimezone(zone).replace(tzinfo=None) - _LONGEST_SHIFT)
    best: datetime | None = None
    horizon: datetime | None = None
    while True:
        local = wall_clock.get_next(datetime)
        if horizon is not None and local > horizon:
            return best  # type: ignore[return-value]
        moments, regular = _moments(local, zone, every_hour)
        for moment in moments:
            if moment > after and (best is None or moment < best):
                best = moment
                # Next to a change, a later wall-clock time can be an earlier moment: look on.
                horizon = horizon or (local if regular else local + _LONGEST_SHIFT)


def _moments(local: datetime, zone: ZoneInfo, both_passes: bool) -> tuple[list[datetime], bool]:
    """When this wall-clock time happens in `zone`, in UTC, and whether that is the regular
    case: once; never (skipped by a spring change: as if the clock had not jumped yet); or
    twice (repeated by an autumn change: the first time, or both when `both_passes`)."""
    first, second = (local.replace(tzinfo=zone, fold=fold).astimezone(timezone.utc) for fold in (0, 1))
    if first == second:
        return [first], True
    if first.astimezone(zone).replace(tzinfo=None) != local:  # skipped
        return [max(first, second)], False
    return (sorted([first, second]) if both_passes else [min(first, second)]), False


def periodic_jobs(settings: Settings) -> list[Periodic]:
    return [
        Periodic(run_due_deletions, interval=60),
        Periodic(run_dns_monitor, interval=300),
        Periodic(run_mailbox_sync, cron=settings.user_sync_cron),
        Periodic(run_credit_check, interval=24 * 3600),
        Periodic(run_reconcile, interval=60),
        Periodic(run_credential_purge, interval=3600),
        Periodic(run_gather_purge, interval=3600),
    ]
