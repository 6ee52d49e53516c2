"""Safe text for Slack mrkdwn.

Anything we echo (mailbox names, domains, error messages from servers) goes through
`escape`, so that a value cannot become a `<!channel>` ping or a forged link.
"""

from __future__ import annotations


def escape(value: object) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(value: object) -> str:
    """Inline code; backticks inside the value would end it early, so they are swapped."""
    return "`" + escape(value).replace("`", "ʼ") + "`"


def clip(value: str, limit: int) -> str:
    """Cut a text to Slack's limit, saying that it was cut."""
    return value if len(value) <= limit else value[: limit - 1] + "…"
