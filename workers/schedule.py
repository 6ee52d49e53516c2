"""The periodic jobs that RQ's CronScheduler enqueues. Each capability adds its own here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Callable
from zoneinfo import ZoneInfo

from purelyops.settings import Settings
from workers.queues import DEFAULT


@dataclass(frozen=True)
class Periodic:
    func: Callable[[], object]
    queue: str = DEFAULT
    interval: int | None = None  # seconds
    cron: str | None = None  # in UTC


def cron_in_utc(expression: str, zone: ZoneInfo, today: date | None = None) -> str:
    """RQ's CronScheduler reads cron expressions in UTC; ours are in TZ. A daily time
    ("M H * * *") is moved to UTC with the zone's offset today (so after a daylight-saving
    change it runs an hour off until the scheduler restarts); other forms stay as given."""
    fields = expression.split()
    if len(fields) != 5 or not (fields[0].isdigit() and fields[1].isdigit()) or fields[2:] != ["*", "*", "*"]:
        return expression
    local = datetime.combine(today or date.today(), time(int(fields[1]), int(fields[0])), tzinfo=zone)
    utc = local.astimezone(timezone.utc)
    return f"{utc.minute} {utc.hour} * * *"


def periodic_jobs(settings: Settings) -> list[Periodic]:
    from workers.credit import run_credit_check
    from workers.deletions import run_due_deletions
    from workers.dns_monitor import run_dns_monitor
    from workers.migration import run_credential_purge, run_reconcile
    from workers.user_sync import run_user_sync

    return [
        Periodic(run_due_deletions, interval=60),
        Periodic(run_dns_monitor, interval=300),
        Periodic(run_user_sync, cron=cron_in_utc(settings.user_sync_cron, settings.zone)),
        Periodic(run_credit_check, interval=24 * 3600),
        Periodic(run_reconcile, interval=60),
        Periodic(run_credential_purge, interval=3600),
    ]
