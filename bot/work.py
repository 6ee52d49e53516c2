"""Work that runs after the ack.

Bolt runs a listener in its own thread pool and waits for `ack()`. If listeners did their
slow work (PurelyMail, DNS, the database) in that pool, a burst of slow commands would
fill it and the next request could not even be acked within Slack's 3 s. So listeners
ack, hand the work to this separate pool, and return: the ack never waits for a thread
that is busy with someone else's work. Excess work queues here instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)
WORK_THREADS = 32
_pool = ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="work")


def after_ack(func: Callable[..., object], *args: object) -> None:
    """Run `func(*args)` soon, in the work pool. Its failures are logged, never raised."""

    def run() -> None:
        try:
            func(*args)
        except Exception:  # noqa: BLE001 - the handlers report to Slack themselves; this is the last net
            log.exception("background work %s failed", getattr(func, "__name__", func))

    _pool.submit(run)
