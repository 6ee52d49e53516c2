"""One request from Slack, whatever its kind: a slash command, a click or a submitted modal.

Each wrapper (`bot.router` for commands, `bot.interactions` for clicks and modals) acks,
then hands its listener a `Request`: who asked, in which channel, and what they gave (a
command's words in `args`; what a builder packed into the clicked button or the modal in
`value`). `reply` answers only that person; `replace` replaces the message a clicked
button was in, and is a reply when there is none, so that a command and its button can
share one handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from slack_bolt import Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.kit import notice_modal, section
from bot.delivery import delivery_key
from bot.mrkdwn import escape
from bot.payloads import read_modal_metadata
from purelyops.failures import failure_reason
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class Request:
    rt: Runtime
    client: WebClient
    user_id: str
    user_name: str
    channel_id: str  # "" when Slack did not say (a click outside a channel)
    trigger_id: str = ""  # for opening a modal
    args: list[str] = field(default_factory=list)  # a command's words after the subcommand's name
    value: str = ""  # the clicked button's value, or the submitted modal's (after its channel)
    respond: Respond | None = None  # a command's or a click's response_url; a modal has none
    in_message: bool = False  # a click on a button in a message, the one `replace` replaces
    idempotency: str = ""  # a submission: the same for every delivery of it (view, hash, values)
    view_id: str = ""  # a submission kept open showing "working" words, which answers replace
    title: str = ""  # …and its title

    @classmethod
    def of_command(cls, rt: Runtime, command: dict, args: list[str], respond: Respond,
                   client: WebClient) -> Request:
        return cls(rt, client, command.get("user_id", ""), command.get("user_name", ""),
                   command.get("channel_id", ""), command.get("trigger_id", ""), args=args, respond=respond)

    @classmethod
    def of_click(cls, rt: Runtime, body: dict, respond: Respond, client: WebClient) -> Request:
        user = body["user"]
        return cls(rt, client, user["id"], user.get("username", ""), (body.get("channel") or {}).get("id", ""),
                   body.get("trigger_id", ""), value=body["actions"][0].get("value") or "", respond=respond,
                   in_message=True)

    @classmethod
    def of_submission(cls, rt: Runtime, body: dict, view: dict, client: WebClient, *, kept_open: bool) -> Request:
        user = body["user"]
        channel, value = read_modal_metadata(view.get("private_metadata") or "")
        return cls(rt, client, user["id"], user.get("username", ""), channel, value=value,
                   idempotency=delivery_key(body) or "", view_id=view.get("id", "") if kept_open else "",
                   title=modal_title(view))

    def reply(self, text: str, blocks: list[dict] | None = None) -> None:
        """A new message only the requester sees. For a modal: ephemeral in the channel it
        was opened from (a direct message when the bot is not there), and in the modal
        when it was kept open."""
        if self.respond is not None:
            self.respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
            return
        self.show_in_modal(text, blocks)
        try:
            self.client.chat_postEphemeral(channel=self.channel_id, user=self.user_id, text=text, blocks=blocks)
        except SlackApiError:
            self.client.chat_postMessage(channel=self.user_id, text=text, blocks=blocks)

    def replace(self, text: str, blocks: list[dict] | None = None) -> None:
        """Replace the message the clicked button was in; without one, reply."""
        if self.in_message and self.respond is not None:
            self.respond(text=text, blocks=blocks, replace_original=True)
        else:
            self.reply(text, blocks)

    def reply_secret(self, text: str, blocks: list[dict], *, shown: str, lost: str) -> None:
        """A message that carries a secret (a generated password): ephemeral, or not at all.
        Never a direct message, which would stay in Slack's history. The modal then says
        `shown` (where to find it) or, when Slack would not show it, `lost` (mrkdwn: why,
        and how to get a new one)."""
        try:
            self.client.chat_postEphemeral(channel=self.channel_id, user=self.user_id, text=text, blocks=blocks)
        except SlackApiError as error:
            log.warning("the one-time message for %s could not be shown: %s", self.user_id, failure_reason(error))
            words = f"{lost}\n_(Slack said: {escape(_slack_code(error))})_"
            if not self.show_in_modal(words):
                self.reply(words)  # no modal to tell it in: these words carry no secret
            return
        self.show_in_modal(shown)

    def show_in_modal(self, text: str, blocks: list[dict] | None = None) -> bool:
        """Replace the kept-open modal's content with this answer; False when there is none."""
        if not self.view_id:
            return False
        if not blocks or any(b.get("type") != "section" or "accessory" in b for b in blocks):
            blocks = [section(text)]
        try:
            self.client.views_update(view_id=self.view_id, view=notice_modal(self.title, blocks))
        except SlackApiError as error:  # closed meanwhile: the message in the channel still tells
            log.info("could not show the outcome in modal %s: %s", self.view_id, failure_reason(error))
            return False
        return True

    def open_modal(self, view: dict) -> None:
        self.client.views_open(trigger_id=self.trigger_id, view=view)


Handler = Callable[[Request], None]  # what a command or a click runs


def modal_title(view: dict) -> str:
    return str((view.get("title") or {}).get("text") or "")


def _slack_code(error: SlackApiError) -> str:
    return str((error.response or {}).get("error") or "unknown error")
