"""Block Kit for the App Home tab."""

from __future__ import annotations

from bot.blocks.kit import context, divider, fields_section, header, home_tab, section, when
from bot.mrkdwn import code, escape
from purelyops.dashboard import Dashboard
from purelyops.money import format_money


def dashboard_blocks(d: Dashboard) -> list[dict]:
    credit = ("not checked yet" if d.credit is None
              else format_money(d.credit) + (" :warning: low" if d.credit_low else ""))
    fields = [
        f"*Mailboxes*\n{d.mailboxes}",
        f"*Domains healthy*\n{d.healthy_domains} of {d.domains}",
        f"*Credit*\n{credit}",
        f"*Migrations*\n{d.migrations_running} running, {d.migrations_queued} queued"
        + (f", {d.migrations_incomplete} incomplete (messages missing)" if d.migrations_incomplete else ""),
        f"*Pending deletions*\n{d.pending_deletions}",
        f"*Last mailbox sync*\n{when(d.last_sync)}",
    ]
    blocks = [fields_section(fields)]
    if d.mailboxes_per_domain:
        lines = [f"{code(domain)}: {count}" for domain, count in d.mailboxes_per_domain[:25]]
        if len(d.mailboxes_per_domain) > 25:
            lines.append(f"…and {len(d.mailboxes_per_domain) - 25} more domains")
        blocks.append(section("*Mailboxes per domain*\n" + "\n".join(lines)))
    return blocks


def home_view(command: str, is_admin: bool, dashboard: Dashboard | None = None) -> dict:
    """The first Home view: what the bot is for and where to start."""
    role = "You are an admin: every command is open to you." if is_admin else (
        "You are not an admin here; ask one to add you to ADMIN_USER_IDS or the admin user group."
    )
    blocks = [
        header("purelyops"),
        section("Run your PurelyMail domains and mailboxes from Slack, and move mailboxes in from an old IMAP host."),
        context(escape(role)),
        divider(),
        section(f"Type `{escape(command)} help` in any channel to see the commands."),
    ]
    if dashboard:
        blocks += [divider(), *dashboard_blocks(dashboard)]
    return home_tab(blocks)
