"""Block Kit for the PurelyMail account: credit."""

from __future__ import annotations

from decimal import Decimal

from bot.blocks.kit import context, message, said, section
from purelyops.money import format_money


def low_credit_blocks(credit: Decimal, threshold: Decimal) -> tuple[str, list[dict]]:
    """The alert that the credit fell below the threshold."""
    return said(f":money_with_wings: PurelyMail credit is down to {format_money(credit)}, below the "
                f"{format_money(threshold)} threshold. Top it up in PurelyMail → Billing before mailboxes are "
                "suspended.")


def credit_blocks(credit: Decimal, threshold: Decimal) -> tuple[str, list[dict]]:
    text = f"PurelyMail account credit: {format_money(credit)}"
    blocks = [section(f"*{text}*")]
    if credit < threshold:
        blocks.append(context(f":warning: Below {format_money(threshold)}: "
                              "when the credit runs out, PurelyMail stops the service. Top it up soon."))
    return message(text, blocks)
