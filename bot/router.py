"""The one slash command and its subcommands.

`/pm domain add example.com` reaches `handle_command`, which acks at once and then
hands the words to the subcommand registered under the longest matching name
("domain add"). Capabilities register their subcommands with `Router.add`.
"""

from __future__ import annotations

import difflib
import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.blocks.help import help_blocks
from bot.guard import guard
from bot.mrkdwn import clip, code
from bot.request import Handler, Request
from bot.work import after_ack
from purelyops import metrics
from purelyops.access import Role
from purelyops.errors import Refused
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)


class Usage(Refused):
    """The command's words do not fit it; the message says what to give."""


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str
    handler: Handler
    role: Role


# Words people typed before the commands had one name per thing; they still work.
SYNONYMS = {"user": "mailbox", "alias": "rule"}


@dataclass
class Router:
    command: str
    subcommands: dict[str, Subcommand] = field(default_factory=dict)

    def add(self, name: str, usage: str, summary: str, role: Role | None = Role.ADMIN) -> Callable[[Handler], Handler]:
        """Register a subcommand. `role` is who may run it (None: anyone, e.g. help)."""

        def decorate(handler: Handler) -> Handler:
            self.subcommands[name] = Subcommand(name, usage, summary, handler, role)
            return handler

        return decorate

    def resolve(self, words: list[str]) -> tuple[Subcommand | None, list[str]]:
        """The subcommand with the longest name that the words start with, and the rest."""
        if words and words[0].lower() in SYNONYMS:
            words = [SYNONYMS[words[0].lower()], *words[1:]]
        for length in range(min(len(words), 3), 0, -1):
            found = self.subcommands.get(" ".join(words[:length]).lower())
            if found:
                return found, words[length:]
        return None, words

    def suggest(self, words: list[str]) -> str | None:
        names = {name.split()[0] for name in self.subcommands}
        close = difflib.get_close_matches(words[0].lower(), names, n=1) if words else []
        return close[0] if close else None

    def register(self, app: App, rt: Runtime) -> None:
        def handle_command(ack: Ack, command: dict, respond: Respond, client: WebClient) -> None:
            ack()
            after_ack(self.dispatch, rt, command, respond, client)

        app.command(self.command)(handle_command)

    def dispatch(self, rt: Runtime, command: dict, respond: Respond, client: WebClient) -> None:
        """Run the subcommand after the ack, in `guard`: role, deadline, failures in words."""
        try:
            words = shlex.split(command.get("text") or "")
        except ValueError:
            words = (command.get("text") or "").split()
        subcommand, args = self.resolve(words or ["help"])
        request = Request.of_command(rt, command, args, respond, client)
        if subcommand is None:
            metrics.COMMANDS.labels("unknown").inc()
            hint = self.suggest(words)
            text = f"I don't know {code(clip(words[0], 40))}." + (
                f" Did you mean {code(hint)}?" if hint else ""
            )
            request.reply(text, help_blocks(self.command, self.subcommands.values(), intro=text))
            return
        metrics.COMMANDS.labels(subcommand.name).inc()
        name = f"{self.command} {subcommand.name}"
        guard(request, subcommand.role, "run " + code(name), lambda: subcommand.handler(request), target=name)
