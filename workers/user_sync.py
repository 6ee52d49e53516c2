"""Job: the nightly user sync, and its report to ALERT_CHANNEL (only when something changed or failed)."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.blocks.users import sync_report_blocks
from purelyops import users
from purelyops.failures import failure_reason
from purelyops.purelymail import LIST_USER_CAP
from purelyops.runtime import Runtime
from workers.queues import DEFAULT, job_runtime, queue

log = logging.getLogger(__name__)


def run_user_sync(cap: int | None = LIST_USER_CAP) -> dict:
    rt = job_runtime()
    try:
        report = users.sync(rt, cap=cap)
    except users.SyncBusy:
        log.info("a user sync is already running; this one is skipped")
        return {"skipped": True}
    announce(rt, report)
    return {"added": len(report.added), "removed": len(report.removed), "error": report.error}


def announce(rt: Runtime, report: users.SyncReport) -> None:
    if not report.worth_telling:
        return
    text, blocks = sync_report_blocks(report)
    try:
        rt.slack.chat_postMessage(channel=rt.settings.alert_channel, text=text, blocks=blocks)
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not post the user sync report: %s", failure_reason(error))


def enqueue_first_sync(rt: Runtime) -> bool:
    """On start: when the cache has never been filled, sync now rather than tonight."""
    if not users.never_synced(rt):
        return False
    queue(rt, DEFAULT).enqueue(run_user_sync, job_id="purelyops-first-user-sync")
    return True
