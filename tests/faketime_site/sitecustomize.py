"""For a test process run under Debian's faketime with DONT_FAKE_MONOTONIC=1 (PYTHONPATH
names this directory): libfaketime 0.9.10 answers Python's time.sleep (clock_nanosleep on
the monotonic clock, with an absolute deadline) with EINVAL, so sleep is done with a
relative select() instead. Nothing else changes; the code under test is untouched."""

import select
import time


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + max(0.0, seconds)
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
