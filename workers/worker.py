"""`python -m workers.worker`: an RQ worker on every purelyops queue."""

from __future__ import annotations

import sys

from rq import Worker

from purelyops.logs import setup_logging
from purelyops.runtime import Runtime
from purelyops.settings import SettingsError, load_settings
from workers.queues import ALL


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    setup_logging(settings)
    rt = Runtime(settings)
    worker = Worker(list(ALL), connection=rt.redis)
    worker.work(with_scheduler=False, logging_level=settings.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
