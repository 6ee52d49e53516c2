"""`python -m workers.worker`: an RQ worker on every purelyops queue."""

from __future__ import annotations

import argparse
import logging
import sys

from rq import Worker

from purelyops.logs import setup_logging
from purelyops.runtime import Runtime
from purelyops.settings import SettingsError, load_settings
from workers.migration import reconcile
from workers.queues import ALL


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
    rt = Runtime(settings)
    try:  # migrations whose worker died are taken up again before this one starts working
        reconcile(rt)
    except Exception as error:  # noqa: BLE001 - the periodic reconciler tries again
        logging.getLogger("workers").warning("could not reconcile migrations at start: %s", error)
    worker = Worker(list(ALL), connection=rt.redis)
    worker.work(burst=args.burst, with_scheduler=False, logging_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
