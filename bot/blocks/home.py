"""Block Kit for the App Home tab."""

from __future__ import annotations

from bot.mrkdwn import escape


def home_view(command: str, is_admin: bool) -> dict:
    """The first Home view: what the bot is for and where to start."""
    role = "You are an admin: every command is open to you." if is_admin else (
        "You are not an admin here; ask one to add you to ADMIN_USER_IDS or the admin user group."
    )
    return {
        "type": "home",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "purelyops"}},
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "Run your PurelyMail domains and mailboxes from Slack, and move "
                    "mailboxes in from an old IMAP host.",
                },
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": escape(role)}]},
            {"type": "divider"},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"Type `{escape(command)} help` in any channel to see the commands."},
            },
        ],
    }
