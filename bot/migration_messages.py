"""Slack out for migrations: the one place that posts and updates a migration's messages.

Used by the listeners (a new job's first message) and by the worker (progress, the
summary, the log); it imports neither. A Slack failure is one log line, never the end of
a migration: the mail matters more than the message about it.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

from slack_sdk.errors import SlackClientError

from bot.blocks.migrations import batch_blocks, queued_blocks, report_table, status_blocks, summary_blocks
from db.models import MigrationJob
from purelyops import migrations
from purelyops.failures import failure_reason
from purelyops.imapsync_output import Progress, Summary
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)


def start(rt: Runtime, job: MigrationJob) -> None:
    """Post the thread's first message ("… queued"), then queue the job."""
    try:
        text, blocks = queued_blocks(job)
        posted = rt.slack.chat_postMessage(channel=job.channel_id, text=text, blocks=blocks)
        migrations.remember_thread(rt, job.id, posted["ts"])
    except SlackClientError as error:
        log.warning("chat.postMessage for migration #%s failed: %s", job.id, failure_reason(error))
    migrations.enqueue(rt, job.id)


def start_batch(rt: Runtime, batch_id: int) -> None:
    """Post the batch message (the thread of every job in it), then queue its jobs."""
    batch, jobs = migrations.batch_jobs(rt, batch_id)
    try:
        text, blocks = batch_blocks(batch, jobs)
        posted = rt.slack.chat_postMessage(channel=batch.channel_id, text=text, blocks=blocks)
        migrations.remember_batch_message(rt, batch.id, posted["ts"])
    except SlackClientError as error:
        log.warning("chat.postMessage for batch %s failed: %s", batch.id, failure_reason(error))
    for job in jobs:
        migrations.enqueue(rt, job.id)


def refresh_batch(rt: Runtime, batch_id: int) -> None:
    batch, jobs = migrations.batch_jobs(rt, batch_id)
    if batch.message_ts:
        text, blocks = batch_blocks(batch, jobs)
        try:
            rt.slack.chat_update(channel=batch.channel_id, ts=batch.message_ts, text=text, blocks=blocks)
        except SlackClientError as error:
            log.warning("chat.update of batch %s failed: %s", batch.id, failure_reason(error))


def show_status(rt: Runtime, job: MigrationJob, progress: Progress | None = None, note: str = "") -> str | None:
    """Update the job's status message in its thread (post it the first time); its ts.
    A job of a batch updates the batch message instead: one message for many mailboxes."""
    if job.batch_id is not None:
        refresh_batch(rt, job.batch_id)
        return job.status_ts
    text, blocks = status_blocks(job, progress, note)
    try:
        if job.status_ts:
            rt.slack.chat_update(channel=job.channel_id, ts=job.status_ts, text=text, blocks=blocks)
        elif job.thread_ts:
            return rt.slack.chat_postMessage(channel=job.channel_id, thread_ts=job.thread_ts, text=text,
                                             blocks=blocks)["ts"]
    except SlackClientError as error:
        log.warning("updating migration #%s in Slack failed: %s", job.id, failure_reason(error))
    return job.status_ts


def post(rt: Runtime, job: MigrationJob, text: str, blocks: list[dict] | None = None) -> None:
    """A message in the job's thread: a builder's text and blocks (bot.blocks.kit.message)."""
    try:
        rt.slack.chat_postMessage(channel=job.channel_id, thread_ts=job.thread_ts, text=text, blocks=blocks)
    except SlackClientError as error:
        log.warning("posting to migration #%s's thread failed: %s", job.id, failure_reason(error))


def post_summary(rt: Runtime, job: MigrationJob, summary: Summary, seconds: float) -> None:
    """The summary with the plan or the check; the whole folder table as a file when the
    message can show only the largest folders."""
    post(rt, job, *summary_blocks(job, summary, seconds))
    table = report_table(job, asdict(summary))
    if table:
        kind = "plan" if job.dry_run else "check"
        _upload(rt, job, table, f"migration-{job.id}-{kind}.txt", f"Every folder: the {kind} of migration #{job.id}")


def upload_missing(rt: Runtime, job: MigrationJob, content: str) -> None:
    """Every message the check did not find at the destination (folder, date, size, Message-Id)."""
    _upload(rt, job, content, f"migration-{job.id}-missing.txt",
            f"Messages not at the destination: migration #{job.id}")


def upload_log(rt: Runtime, job: MigrationJob, content: str) -> None:
    """The whole imapsync log (secrets already masked) as a file in the thread."""
    _upload(rt, job, content, f"migration-{job.id}.log", f"imapsync log of migration #{job.id}")


def _upload(rt: Runtime, job: MigrationJob, content: str, filename: str, title: str) -> None:
    try:
        rt.slack.files_upload_v2(channel=job.channel_id, thread_ts=job.thread_ts, content=content,
                                 filename=filename, title=title)
    except SlackClientError as error:
        log.warning("uploading %s failed: %s", filename, failure_reason(error))
