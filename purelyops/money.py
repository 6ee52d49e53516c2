"""Money as every message shows it: dollars rounded down to the cent.

PurelyMail reports credit with many decimals (1.999…). Rounding to the nearest cent would
show $2.00 when there is less than $2.00, so amounts are rounded down (towards less money,
negative amounts too): a message never shows more money than there is."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

CENT = Decimal("0.01")


def format_money(amount: Decimal) -> str:
    """`$1,234.56`, `-$0.01`: rounded down to the cent, with thousands separated."""
    cents = amount.quantize(CENT, rounding=ROUND_FLOOR)
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents):,.2f}"
