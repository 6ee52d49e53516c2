"""Jobs for credential links: Create jobs (mailboxes, then one batch of migrations), which
takes longer than a click may (PurelyMail answers about one call a second), and the purge
of credentials that were never used."""

from __future__ import annotations

import logging

from bot import gather_messages as slack_out
from bot import migration_messages
from purelyops import gather
from purelyops.failures import describe_failure, is_expected, new_error_id
from workers.queues import job_runtime

log = logging.getLogger(__name__)


def run_create_jobs(link_id: int, domain: str | None, dry_run: bool, exclude: str | None, max_age_days: int | None,
                    actor_id: str, actor_name: str, channel_id: str, view_id: str, title: str,
                    idempotency_key: str, rows: list[int] | None = None, approved: list[int] | None = None) -> dict:
    """Create the link's jobs for the admin who asked; tell them how it went (the new
    mailboxes' passwords only to them), then queue the batch. `rows`: the submissions the
    admin was shown (None, from an older enqueue: the next page); `approved`: those whose
    existing destination they approved. Returns counts only."""
    rt = job_runtime()
    options = gather.JobOptions(domain, dry_run, exclude, max_age_days, None if rows is None else tuple(rows),
                                frozenset(approved or ()))
    try:
        outcome = gather.create_jobs(rt, link_id, options, actor_id=actor_id, actor_name=actor_name,
                                     channel_id=channel_id, idempotency_key=idempotency_key)
    except gather.GatherError as error:
        slack_out.failed(rt, channel_id, actor_id, view_id, title, str(error))
        return {"jobs": 0}
    except Exception as error:  # noqa: BLE001 - the admin hears of every failure, in words
        error_id = "" if is_expected(error) else new_error_id()
        if error_id:
            log.error("creating the jobs of credential link %s failed [error id %s]", link_id, error_id,
                      exc_info=error)
        else:
            log.warning("creating the jobs of credential link %s failed: %s", link_id, error)
        slack_out.failed(rt, channel_id, actor_id, view_id, title,
                         "Creating the jobs stopped: " + describe_failure(error, error_id or None)
                         + " Mailboxes already created stay; Create jobs again to go on.")
        return {"jobs": 0, "failed": True}
    slack_out.jobs_created(rt, link_id, outcome, dry_run=dry_run, channel_id=channel_id, user_id=actor_id,
                           view_id=view_id, title=title)
    if outcome.batch_id is not None:
        migration_messages.start_batch(rt, outcome.batch_id)
    return {"jobs": outcome.jobs, "created": len(outcome.created), "problems": len(outcome.problems)}


def run_purge() -> int:
    return gather.purge_unused_credentials(job_runtime())
