"""Block Kit for the PurelyMail account: credit."""

from __future__ import annotations

from decimal import Decimal

from bot.blocks.kit import context, section
from purelyops.money import format_money


def credit_blocks(credit: Decimal, threshold: Decimal) -> tuple[str, list[dict]]:
    text = f"PurelyMail account credit: {format_money(credit)}"
    blocks = [section(f"*{text}*")]
    if credit < threshold:
        blocks.append(context(f":warning: Below {format_money(threshold)}: "
                              "when the credit runs out, PurelyMail stops the service. Top it up soon."))
    return text, blocks
