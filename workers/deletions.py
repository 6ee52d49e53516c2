"""Job: carry out the deletions that are due, and tell the channel where each was asked."""

from __future__ import annotations

from bot import alerts
from purelyops import deletions
from workers.queues import job_runtime


def run_due_deletions() -> int:
    rt = job_runtime()
    finished = deletions.run_due(rt)
    for deletion in finished:
        alerts.deletion_outcome(rt, deletion)
    return len(finished)
