"""`python -m workers.scheduler`: RQ's CronScheduler with purelyops' periodic jobs."""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from rq import cron as rq_cron
from rq.cron import CronJob, CronScheduler

from purelyops.failures import failure_reason
from purelyops.logs import setup_logging
from purelyops.runtime import Runtime
from purelyops.settings import SettingsError, load_settings
from workers.mailbox_sync import enqueue_first_sync
from workers.periodic import next_run, periodic_jobs


class ZonedCronJob(CronJob):
    """A cron job whose expression is read on the wall clock in `zone`. RQ reads cron in
    UTC; here every next run is computed in the zone when the previous one is enqueued, so
    a daily 02:00 stays at 02:00 across daylight-saving changes."""

    def __init__(self, queue_name: str, func, cron: str, zone: ZoneInfo) -> None:
        self.zone = zone
        super().__init__(queue_name, func=func, cron=cron)
        self.next_enqueue_time = self.get_next_enqueue_time()

    def get_next_enqueue_time(self) -> datetime:
        # rq.cron.now, the scheduler's own clock, so both agree on what "now" is.
        return next_run(self.cron, self.zone, self.latest_enqueue_time or rq_cron.now())


class ZonedCronScheduler(CronScheduler):
    """RQ's CronScheduler, with cron jobs in a time zone."""

    def register_in_zone(self, func, queue_name: str, cron: str, zone: ZoneInfo) -> CronJob:
        job = ZonedCronJob(queue_name, func, cron, zone)
        self._cron_jobs.append(job)  # what CronScheduler.register does with the jobs it builds
        self.log.info("Registered '%s' to run on %s with cron schedule '%s' in %s, next at %s",
                      job.func_name, queue_name, cron, zone.key, job.next_enqueue_time.astimezone(zone))
        return job


def build_scheduler(rt: Runtime) -> CronScheduler:
    scheduler = ZonedCronScheduler(connection=rt.redis, logging_level=rt.settings.log_level)
    for job in periodic_jobs(rt.settings):
        if job.cron:
            scheduler.register_in_zone(job.func, job.queue, job.cron, rt.settings.zone)
        else:
            scheduler.register(job.func, job.queue, interval=job.interval)
    return scheduler


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    setup_logging(settings)
    log = logging.getLogger("workers")
    log.info("Starting the scheduler")
    rt = Runtime(settings)
    try:
        if enqueue_first_sync(rt):
            log.info("The mailbox cache was never filled: a mailbox sync is queued now")
    except Exception as error:  # noqa: BLE001 - the nightly sync will fill it; start anyway
        log.warning("could not check whether the mailbox cache was ever filled: %s", failure_reason(error))
    build_scheduler(rt).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
