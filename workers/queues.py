"""The RQ queues purelyops uses, and the runtime that jobs run with."""

from __future__ import annotations

from functools import lru_cache

from rq import Queue

from purelyops.runtime import Runtime
from purelyops.settings import load_settings

DEFAULT = "default"  # short jobs: syncs, DNS checks, due deletions
MIGRATIONS = "migrations"  # imapsync runs, which take minutes to hours
ALL = (DEFAULT, MIGRATIONS)


def queue(rt: Runtime, name: str = DEFAULT) -> Queue:
    return Queue(name, connection=rt.redis)


@lru_cache(maxsize=1)
def job_runtime() -> Runtime:
    """The runtime of this worker process; jobs take ids, not objects, and call this."""
    return Runtime(load_settings())
