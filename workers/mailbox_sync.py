"""Job: the nightly mailbox sync, and its report to ALERT_CHANNEL (only when something changed or failed)."""

from __future__ import annotations

import logging

from bot import alerts
from purelyops import mailboxes
from purelyops.purelymail import LIST_USER_CAP
from purelyops.runtime import Runtime
from workers.queues import DEFAULT, job_runtime, queue

log = logging.getLogger(__name__)


def run_mailbox_sync(cap: int | None = LIST_USER_CAP) -> dict:
    rt = job_runtime()
    try:
        report = mailboxes.sync(rt, cap=cap)
    except mailboxes.SyncBusy:
        log.info("a mailbox sync is already running; this one is skipped")
        return {"skipped": True}
    alerts.sync_report(rt, report)
    return {"added": len(report.added), "removed": len(report.removed), "error": report.error}


def enqueue_first_sync(rt: Runtime) -> bool:
    """On start: when the cache has never been filled, sync now rather than tonight."""
    if not mailboxes.never_synced(rt):
        return False
    queue(rt, DEFAULT).enqueue(run_mailbox_sync, job_id="purelyops-first-user-sync")
    return True
