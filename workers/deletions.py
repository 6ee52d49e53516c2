"""Job: carry out the deletions that are due, and tell the channel where each was asked."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.blocks.deletions import outcome_blocks
from db.models import PendingDeletion
from purelyops import deletions
from purelyops.failures import failure_reason
from purelyops.runtime import Runtime
from workers.queues import job_runtime

log = logging.getLogger(__name__)


def run_due_deletions() -> int:
    rt = job_runtime()
    finished = deletions.run_due(rt)
    report_outcomes(rt, finished)
    return len(finished)


def report_outcomes(rt: Runtime, finished: list[PendingDeletion]) -> None:
    """Each outcome goes to the channel where it was asked; failures also to ALERT_CHANNEL."""
    for deletion in finished:
        text, blocks = outcome_blocks(deletion)
        channel = deletion.channel_id or rt.settings.alert_channel
        try:
            rt.slack.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=deletion.message_ts)
            if deletion.status != "done" and channel != rt.settings.alert_channel:
                rt.slack.chat_postMessage(channel=rt.settings.alert_channel, text=text, blocks=blocks)
        except (SlackApiError, SlackClientError) as error:
            log.warning("could not report deletion %s: %s", deletion.id, failure_reason(error))
