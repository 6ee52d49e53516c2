"""`python -m workers.scheduler`: RQ's CronScheduler with purelyops' periodic jobs."""

from __future__ import annotations

import logging
import sys

from rq.cron import CronScheduler

from purelyops.failures import failure_reason
from purelyops.logs import setup_logging
from purelyops.runtime import Runtime
from purelyops.settings import SettingsError, load_settings
from workers.schedule import periodic_jobs
from workers.user_sync import enqueue_first_sync


def build_scheduler(rt: Runtime) -> CronScheduler:
    scheduler = CronScheduler(connection=rt.redis, logging_level=rt.settings.log_level)
    for job in periodic_jobs(rt.settings):
        scheduler.register(job.func, job.queue, interval=job.interval, cron=job.cron)
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
            log.info("The users cache was never filled: a user sync is queued now")
    except Exception as error:  # noqa: BLE001 - the nightly sync will fill it; start anyway
        log.warning("could not check whether the users cache was ever filled: %s", failure_reason(error))
    build_scheduler(rt).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
