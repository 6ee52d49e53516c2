"""Job: the daily credit check, which alerts ALERT_CHANNEL once when the credit falls
below LOW_CREDIT_THRESHOLD (purelyops.credit keeps the state)."""

from __future__ import annotations

from bot import alerts
from purelyops import credit
from purelyops.runtime import Runtime
from workers.queues import job_runtime


def run_credit_check() -> str:
    return check_credit(job_runtime())


def check_credit(rt: Runtime) -> str:
    """"alerted", "low" (already told), "ok" or "recovered"."""
    result = credit.check(rt)
    if result.fell:
        alerts.low_credit(rt, result)
        return "alerted"
    return "low" if result.low else ("recovered" if result.was_low else "ok")
