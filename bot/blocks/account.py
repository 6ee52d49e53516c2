"""Block Kit for the PurelyMail account: credit."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal


def format_money(amount: Decimal) -> str:
    return "$" + str(amount.quantize(Decimal("0.01"), rounding=ROUND_DOWN))


def credit_blocks(credit: Decimal, threshold: Decimal) -> tuple[str, list[dict]]:
    text = f"PurelyMail account credit: {format_money(credit)}"
    blocks: list[dict] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    if credit < threshold:
        blocks.append({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f":warning: Below {format_money(threshold)}: "
                          "when the credit runs out, PurelyMail stops the service. Top it up soon."}],
        })
    return text, blocks
