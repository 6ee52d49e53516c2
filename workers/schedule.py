"""The periodic jobs that RQ's CronScheduler enqueues. Each capability adds its own here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from purelyops.settings import Settings
from workers.queues import DEFAULT


@dataclass(frozen=True)
class Periodic:
    func: Callable[[], object]
    queue: str = DEFAULT
    interval: int | None = None  # seconds
    cron: str | None = None  # in UTC


def periodic_jobs(settings: Settings) -> list[Periodic]:
    from workers.deletions import run_due_deletions
    from workers.dns_monitor import run_dns_monitor

    return [
        Periodic(run_due_deletions, interval=60),
        Periodic(run_dns_monitor, interval=300),
        # users and credit (issue 4)
        # migrations (issue 5)
    ]
