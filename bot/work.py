"""Work that runs after the ack, and only once the acks in flight are out.

Bolt runs a listener in its own thread pool and waits for `ack()`. If listeners did their
slow work (PurelyMail, DNS, the database) in that pool, a burst of slow commands would
fill it and the next request could not even be acked within Slack's 3 s. So listeners
ack, hand the work to this separate pool, and return: the ack never waits for a thread
that is busy with someone else's work. Excess work queues here instead.

In a burst, the work of the first requests would still take the CPU (and the GIL) from
the acks of the later ones. So the work yields: it starts once this process has answered
no request from Slack (`answering` counts them) for QUIET_S, longer than the gaps between
the requests of one burst on a busy CPU (gunicorn reading the next one), or after
ACK_FIRST_WAIT_S at most, so that a steady stream of requests cannot hold it back for long.
In Socket Mode nothing is counted and the work starts at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from bot.delivery import claim_later

log = logging.getLogger(__name__)
WORK_THREADS = 32
ACK_FIRST_WAIT_S = 0.25
QUIET_S = 0.05
_pool = ThreadPoolExecutor(WORK_THREADS, thread_name_prefix="work")
_answering = 0
_last_answer = 0.0  # time.monotonic() when the last answer was out
_lock = threading.Lock()


@contextmanager
def answering() -> Iterator[None]:
    """Around the answer to one request from Slack: work after the ack waits until none is left."""
    global _answering, _last_answer
    with _lock:
        _answering += 1
    try:
        yield
    finally:
        with _lock:
            _answering -= 1
            _last_answer = time.monotonic()


def after_ack(func: Callable[..., object], *args: object) -> None:
    """Run `func(*args)` soon, in the work pool, unless the request it answers was delivered
    before (bot.delivery). Its failures are logged, never raised."""
    first = claim_later()

    def run() -> None:
        _wait_for_quiet(time.monotonic() + ACK_FIRST_WAIT_S)
        try:
            if first is None or first():
                func(*args)
        except Exception:  # noqa: BLE001 - the handlers report to Slack themselves; this is the last net
            log.exception("background work %s failed", getattr(func, "__name__", func))

    _pool.submit(run)


def _wait_for_quiet(until: float) -> None:
    """Until no answer has been in flight for QUIET_S, or `until` (time.monotonic())."""
    while True:
        with _lock:
            now = time.monotonic()
            quiet_for = 0.0 if _answering else now - _last_answer
        if quiet_for >= QUIET_S or now >= until:
            return
        time.sleep(min(QUIET_S - quiet_for, until - now))
