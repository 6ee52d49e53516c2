"""Slack out for credential links: the one place that posts and updates a link's messages.

Used by the listeners (the link's message), by the public form (a submission announced in
the link's thread) and by the Create jobs job (its outcome, and the new mailboxes'
passwords to the one admin who asked). A Slack failure is one log line: what was stored
stays stored, and the link's message can be refreshed later.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackClientError

from bot.blocks import gather as blocks
from bot.blocks.kit import notice_modal, said, section
from purelyops import gather
from purelyops.failures import failure_reason
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)
PASSWORDS_PER_MESSAGE = 100  # new mailboxes' passwords in one ephemeral message


def _open_url(rt: Runtime, summary: gather.LinkSummary) -> str | None:
    """The link itself while its form is open; None once it is closed or expired."""
    if summary.state is not gather.LinkState.ACTIVE:
        return None
    try:
        return gather.link_url(rt, gather.reveal_token(rt, summary.link))
    except gather.GatherError as error:
        log.warning("credential link %s: %s", summary.link.id, error)
        return None


def post_link(rt: Runtime, link_id: int) -> None:
    """The link's message in its channel, with the link, remembered for its thread."""
    summary = gather.summary(rt, link_id)
    text, message = blocks.link_blocks(summary, _open_url(rt, summary))
    try:
        posted = rt.slack.chat_postMessage(channel=summary.link.channel_id, text=text, blocks=message)
        gather.remember_message(rt, link_id, posted["ts"])
    except SlackClientError as error:
        log.warning("posting credential link %s failed: %s", link_id, failure_reason(error))


def refresh_link(rt: Runtime, link_id: int) -> None:
    """Bring the link's message up to date (state, counts, buttons)."""
    summary = gather.summary(rt, link_id)
    if not summary.link.message_ts:
        return
    text, message = blocks.link_blocks(summary, _open_url(rt, summary))
    try:
        rt.slack.chat_update(channel=summary.link.channel_id, ts=summary.link.message_ts, text=text, blocks=message)
    except SlackClientError as error:
        log.warning("updating credential link %s's message failed: %s", link_id, failure_reason(error))


def announce(rt: Runtime, link_id: int, submission_id: int) -> None:
    """An accepted submission, in the link's thread: the person's name and address only."""
    link = gather.get_link(rt, link_id)
    submission = next((s for s in gather.submissions(rt, link_id) if s.id == submission_id), None)
    if submission is None:
        return
    text, message = blocks.announcement_blocks(submission)
    try:
        rt.slack.chat_postMessage(channel=link.channel_id, thread_ts=link.message_ts, text=text, blocks=message)
    except SlackClientError as error:
        log.warning("announcing a submission to credential link %s failed: %s", link_id, failure_reason(error))
    refresh_link(rt, link_id)


def tell_in_modal(rt: Runtime, view_id: str, title: str, text: str) -> bool:
    """Replace a kept-open modal's "working" words with the outcome; False when it is gone."""
    if not view_id:
        return False
    try:
        rt.slack.views_update(view_id=view_id, view=notice_modal(title, [section(text)]))
    except SlackClientError as error:
        log.info("could not show the outcome in modal %s: %s", view_id, failure_reason(error))
        return False
    return True


def ephemeral(rt: Runtime, channel_id: str, user_id: str, text: str, message: list[dict]) -> bool:
    """A message only `user_id` sees; False when Slack would not show it (never a DM instead)."""
    try:
        rt.slack.chat_postEphemeral(channel=channel_id, user=user_id, text=text, blocks=message)
    except SlackClientError as error:
        log.warning("an ephemeral message to %s could not be shown: %s", user_id, failure_reason(error))
        return False
    return True


def jobs_created(rt: Runtime, link_id: int, outcome: gather.JobsOutcome, *, dry_run: bool, channel_id: str,
                 user_id: str, view_id: str, title: str) -> None:
    """Create jobs is done: the new passwords to the admin only (ephemeral, or not at all),
    the outcome in words (ephemeral, and in the kept-open modal)."""
    text, message = blocks.jobs_outcome_blocks(link_id, outcome, dry_run)
    words = message[0]["text"]["text"]
    if outcome.created:
        chunks = [outcome.created[i:i + PASSWORDS_PER_MESSAGE]
                  for i in range(0, len(outcome.created), PASSWORDS_PER_MESSAGE)]
        if all(ephemeral(rt, channel_id, user_id, *blocks.passwords_blocks(chunk)) for chunk in chunks):
            words += "\n" + blocks.passwords_shown_words(len(outcome.created))
        else:
            words += "\n" + blocks.passwords_lost_words(outcome.created, rt.settings.slack_command)
    tell_in_modal(rt, view_id, title, words)
    ephemeral(rt, channel_id, user_id, text, message)
    refresh_link(rt, link_id)


def failed(rt: Runtime, channel_id: str, user_id: str, view_id: str, title: str, words: str) -> None:
    """Create jobs could not be done: why, in words, where the admin looks."""
    text, message = said(f":warning: {words}")
    tell_in_modal(rt, view_id, title, text)
    ephemeral(rt, channel_id, user_id, text, message)
