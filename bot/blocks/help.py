"""Block Kit for `/pm help`: the list of subcommands, grouped by capability."""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby
from typing import TYPE_CHECKING

from bot.blocks.kit import header, line_sections, section
from bot.mrkdwn import escape

if TYPE_CHECKING:
    from bot.router import Subcommand

GROUP_TITLES = {
    "help": "General",
    "domain": "Domains",
    "pending": "Domains",
    "user": "Mailboxes",
    "alias": "Mailboxes",
    "credit": "Account",
    "server": "Migrations",
    "migrate": "Migrations",
    "jobs": "Migrations",
    "job": "Migrations",
    "gather": "Migrations",
    "audit": "Audit",
}
GROUP_ORDER = list(dict.fromkeys(GROUP_TITLES.values()))


def help_blocks(command: str, subcommands: Iterable[Subcommand], intro: str | None = None) -> list[dict]:
    """Sections of `usage — summary` lines, grouped by capability: a group starts a section
    under its title and goes on over as many sections as it needs."""
    blocks: list[dict] = []
    if intro:
        blocks.append(section(intro))
    blocks.append(header(f"{command} commands"))

    def group(sub: Subcommand) -> str:
        return GROUP_TITLES.get(sub.name.split()[0], "Other")

    def order(sub: Subcommand) -> tuple[int, str]:
        title = group(sub)
        return (GROUP_ORDER.index(title) if title in GROUP_ORDER else len(GROUP_ORDER), sub.name)

    for title, subs in groupby(sorted(subcommands, key=order), key=group):
        lines = [f"`{escape(command)} {escape(s.usage)}` — {escape(s.summary)}" for s in subs]
        blocks.extend(line_sections([f"*{title}*", *lines]))
    return blocks
