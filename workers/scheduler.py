"""`python -m workers.scheduler`: RQ's CronScheduler with purelyops' periodic jobs."""

from __future__ import annotations

import logging
import sys

from rq.cron import CronScheduler

from purelyops.logs import setup_logging
from purelyops.runtime import Runtime
from purelyops.settings import SettingsError, load_settings
from workers.schedule import periodic_jobs


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
    logging.getLogger("workers").info("Starting the scheduler")
    build_scheduler(Runtime(settings)).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
