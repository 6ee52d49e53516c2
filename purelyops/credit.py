"""The PurelyMail account's credit, and whether it is low.

The daily check records the credit and whether it is below LOW_CREDIT_THRESHOLD (the
"credit" sync state, which App Home also reads), so that it alerts once when the credit
falls below the threshold, and not again until it has gone back above.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert

from db.models import SyncState
from db.session import session_scope
from purelyops.runtime import Runtime

STATE = "credit"


def current(rt: Runtime) -> Decimal:
    """The credit now, from PurelyMail."""
    return rt.purelymail.check_account_credit()


@dataclass(frozen=True)
class CreditCheck:
    credit: Decimal
    threshold: Decimal
    was_low: bool  # at the check before

    @property
    def low(self) -> bool:
        return self.credit < self.threshold

    @property
    def fell(self) -> bool:
        """It went below the threshold at this check: the one time to alert."""
        return self.low and not self.was_low


def check(rt: Runtime) -> CreditCheck:
    """Read the credit and record it, with whether it is low."""
    credit = current(rt)
    threshold = rt.settings.low_credit_threshold
    now = datetime.now(timezone.utc)
    with session_scope(rt.database_url) as session:
        state = session.get(SyncState, STATE)
        was_low = bool(state and state.data.get("low"))
        data = {"low": credit < threshold, "credit": str(credit)}
        session.execute(insert(SyncState).values(name=STATE, last_run_at=now, last_ok_at=now, data=data)
                        .on_conflict_do_update(index_elements=["name"],
                                               set_={"last_run_at": now, "last_ok_at": now, "data": data}))
    return CreditCheck(credit, threshold, was_low)
