"""Job: the daily credit check. One alert when the credit falls below LOW_CREDIT_THRESHOLD,
none again until it has gone back above."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import Decimal

from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.dialects.postgresql import insert

from db.models import SyncState
from db.session import session_scope
from purelyops.failures import failure_reason
from purelyops.money import format_money
from purelyops.runtime import Runtime
from workers.queues import job_runtime

log = logging.getLogger(__name__)
STATE = "credit"


def run_credit_check() -> str:
    return check_credit(job_runtime())


def check_credit(rt: Runtime) -> str:
    """"alerted", "low" (already told), "ok" or "recovered"."""
    credit = rt.purelymail.check_account_credit()
    threshold = rt.settings.low_credit_threshold
    now = datetime.now(timezone.utc)
    with session_scope(rt.database_url) as session:
        state = session.get(SyncState, STATE)
        was_low = bool(state and state.data.get("low"))
        low = credit < threshold
        data = {"low": low, "credit": str(credit)}
        session.execute(insert(SyncState).values(name=STATE, last_run_at=now, last_ok_at=now, data=data)
                        .on_conflict_do_update(index_elements=["name"],
                                               set_={"last_run_at": now, "last_ok_at": now, "data": data}))
    if low and not was_low:
        _alert(rt, credit, threshold)
        return "alerted"
    return "low" if low else ("recovered" if was_low else "ok")


def _alert(rt: Runtime, credit: Decimal, threshold: Decimal) -> None:
    text = (f":money_with_wings: PurelyMail credit is down to {format_money(credit)}, "
            f"below the {format_money(threshold)} threshold. "
            "Top it up in PurelyMail → Billing before mailboxes are suspended.")
    try:
        rt.slack.chat_postMessage(channel=rt.settings.alert_channel, text=text)
    except (SlackApiError, SlackClientError) as error:
        log.warning("could not post the low-credit alert: %s", failure_reason(error))
