"""`python -m workers.worker`: an RQ worker on every purelyops queue."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rq import Worker

from purelyops import metrics
from purelyops.failures import failure_reason, is_expected
from purelyops.logs import setup_logging
from purelyops.runtime import Runtime
from purelyops.settings import SettingsError, load_settings
from workers.migration import reconcile
from workers.queues import ALL


class PurelyopsWorker(Worker):
    """RQ's worker, except that a job failing for an expected reason (PurelyMail, Slack, the
    database or Redis unreachable) is one log line; a bug keeps RQ's traceback."""

    def handle_exception(self, job, *exc_info) -> None:  # type: ignore[no-untyped-def]
        error = exc_info[1] if len(exc_info) > 1 else None
        if error is None or not is_expected(error):
            super().handle_exception(job, *exc_info)
            return
        try:
            name = job.func_name
        except Exception:  # noqa: BLE001 - a job that cannot be read is still named by its id
            name = "?"
        self.log.warning("job %s (%s) failed: %s", job.id, name, failure_reason(error))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="An RQ worker on every purelyops queue.")
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    setup_logging(settings)
    # RQ forks a work horse per job: its counts go to files shared by this worker's horses.
    os.register_at_fork(after_in_child=metrics.forked_as_work_horse)
    if settings.worker_metrics_port is not None:
        metrics.serve_on_port(settings.worker_metrics_port, settings.metrics_host)
    rt = Runtime(settings)
    try:  # migrations whose worker died are taken up again before this one starts working
        reconcile(rt)
    except Exception as error:  # noqa: BLE001 - the periodic reconciler tries again
        logging.getLogger("workers").warning("could not reconcile migrations at start: %s", failure_reason(error))
    worker = PurelyopsWorker(list(ALL), connection=rt.redis)
    worker.work(burst=args.burst, with_scheduler=False, logging_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
