"""Job: watch every domain's DNS (purelyops.dns_monitor) and tell ALERT_CHANNEL when a
record breaks or recovers: one message per change."""

from __future__ import annotations

from datetime import datetime

from bot import alerts
from purelyops import dns_monitor
from purelyops.runtime import Runtime
from workers.queues import job_runtime


def run_dns_monitor() -> int:
    return len(monitor(job_runtime()))


def monitor(rt: Runtime, now: datetime | None = None) -> list[dns_monitor.Change]:
    changes = dns_monitor.watch(rt, now)
    for change in changes:
        alerts.dns_change(rt, change)
    return changes
