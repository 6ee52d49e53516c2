"""The states of a migration job (its `status` column), for every layer that names them:
purelyops.migrations moves jobs between them, purelyops.metrics counts jobs in each."""

from __future__ import annotations

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    INCOMPLETE = "incomplete"  # the run ended, and the check found messages missing at the destination
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


STATES = tuple(state.value for state in JobState)
ENDED = (JobState.DONE, JobState.INCOMPLETE, JobState.FAILED, JobState.CANCELLED, JobState.INTERRUPTED)
