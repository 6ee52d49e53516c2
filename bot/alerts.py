"""Slack out for what the bot tells a channel unasked: alerts to ALERT_CHANNEL (a user
sync's report, low credit, a domain's DNS changing) and the outcome of each scheduled
deletion. Used by jobs and listeners alike; it imports neither. A Slack failure is one
log line: the work it reports on is done either way.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackClientError

from bot.blocks.account import low_credit_blocks
from bot.blocks.deletions import outcome_blocks
from bot.blocks.domains import alert_blocks
from bot.blocks.mailboxes import sync_report_blocks
from db.models import PendingDeletion
from purelyops.credit import CreditCheck
from purelyops.dns_monitor import Change
from purelyops.failures import failure_reason
from purelyops.mailboxes import SyncReport
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)


def _post(rt: Runtime, what: str, text: str, blocks: list[dict], *, channel: str | None = None,
          thread_ts: str | None = None) -> None:
    """A builder's message (bot.blocks.kit.message: the text escaped like the blocks)."""
    try:
        rt.slack.chat_postMessage(channel=channel or rt.settings.alert_channel, text=text, blocks=blocks,
                                  thread_ts=thread_ts)
    except SlackClientError as error:  # SlackApiError is one too
        log.warning("could not post %s: %s", what, failure_reason(error))


def sync_report(rt: Runtime, report: SyncReport) -> None:
    """A mailbox sync's report, only when something changed or failed."""
    if report.worth_telling:
        _post(rt, "the mailbox sync report", *sync_report_blocks(report))


def low_credit(rt: Runtime, check: CreditCheck) -> None:
    _post(rt, "the low-credit alert", *low_credit_blocks(check.credit, check.threshold))


def dns_change(rt: Runtime, change: Change) -> None:
    _post(rt, f"the DNS change of {change.domain}",
          *alert_blocks(change.domain, change.broken_records, change.recovered))


def deletion_outcome(rt: Runtime, deletion: PendingDeletion) -> None:
    """To the channel where it was asked (in its thread); a failure to ALERT_CHANNEL too."""
    text, blocks = outcome_blocks(deletion)
    alert_channel = rt.settings.alert_channel
    channel = deletion.channel_id or alert_channel
    _post(rt, f"the outcome of deletion {deletion.id}", text, blocks, channel=channel, thread_ts=deletion.message_ts)
    if deletion.status != "done" and channel != alert_channel:
        _post(rt, f"the outcome of deletion {deletion.id}", text, blocks)
