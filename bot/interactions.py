"""Buttons and modals: ack first, then the work in `bot.guard.guard` (role check, one
PurelyMail deadline, failures in words), as the router does for slash commands."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.kit import notice_modal, section
from bot.delivery import delivery_key
from bot.guard import guard
from bot.mrkdwn import clip, escape
from bot.work import after_ack
from purelyops.access import Role
from purelyops.failures import failure_reason
from purelyops.fields import FieldProblems
from purelyops.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class ActionRequest:
    """One click, with what a handler needs to answer it."""

    rt: Runtime
    body: dict
    respond: Respond
    client: WebClient

    @property
    def user_id(self) -> str:
        return self.body["user"]["id"]

    @property
    def value(self) -> str:
        return self.body["actions"][0].get("value") or ""

    def reply(self, text: str, blocks: list[dict] | None = None) -> None:
        """A new ephemeral message for the person who clicked."""
        self.respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)

    def replace(self, text: str, blocks: list[dict] | None = None) -> None:
        """Replace the message the button was in."""
        self.respond(text=text, blocks=blocks, replace_original=True)


def guarded(rt: Runtime, role: Role, what: str) -> Callable[[Callable[[ActionRequest], None]], Callable]:
    """Wrap a click handler: ack at once, refuse (and audit) without `role`, report failures in words."""

    def decorate(handler: Callable[[ActionRequest], None]) -> Callable:
        def listener(ack: Ack, body: dict, respond: Respond, client: WebClient) -> None:
            ack()
            after_ack(run, ActionRequest(rt, body, respond, client))

        def run(request: ActionRequest) -> None:
            guard(rt, role, what, request.user_id, request.body["user"].get("username", ""), request.reply,
                  lambda: handler(request))

        return listener

    return decorate


FieldErrors = FieldProblems  # what a modal's validator raises: {block_id: message}, shown inline


@dataclass
class SubmissionRequest:
    """A submitted modal, after its ack: answers go to the channel it was opened from.

    When the modal was kept open (`guarded_view(..., working=...)`), `view_id` is set and
    every answer also replaces the modal's "working" text, so the admin sees the outcome
    where they pressed Submit."""

    rt: Runtime
    user_id: str
    user_name: str
    channel_id: str
    metadata: str  # the modal's private_metadata after the channel id
    client: WebClient
    idempotency: str  # the same for every delivery of this very submission (view, hash, values)
    view_id: str = ""
    title: str = ""

    def reply(self, text: str, blocks: list[dict] | None = None) -> None:
        """An ephemeral message; a direct message when the bot is not in that channel."""
        self.show_in_modal(text, blocks)
        try:
            self.client.chat_postEphemeral(channel=self.channel_id, user=self.user_id, text=text, blocks=blocks)
        except SlackApiError:
            self.client.chat_postMessage(channel=self.user_id, text=text, blocks=blocks)

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


def _slack_code(error: SlackApiError) -> str:
    return str((error.response or {}).get("error") or "unknown error")


def values_of(view: dict) -> dict[str, object]:
    """{block_id: what was typed or chosen} for a view's single-element input blocks."""
    out: dict[str, object] = {}
    for block_id, actions in ((view.get("state") or {}).get("values") or {}).items():
        for state in actions.values():
            if "files" in state:
                out[block_id] = list(state["files"] or [])
            elif "selected_options" in state:
                out[block_id] = [o["value"] for o in state["selected_options"] or []]
            elif "selected_option" in state:
                out[block_id] = (state["selected_option"] or {}).get("value")
            else:
                out[block_id] = state.get("value") or ""
    return out


def guarded_view(rt: Runtime, role: Role, what: str, validate: Callable[[dict[str, object]], object], *,
                 working: str = "") -> Callable:
    """Wrap a modal's submission: `validate(values)` runs before the ack and raises
    FieldErrors for inline errors; then the ack, then (in the work pool) the role check and
    `handler(request, validated)`, with failures reported in words. With `working`, the
    ack keeps the modal open showing those words until the answer replaces them (the one
    place a secret's failure can be told without a direct message)."""

    def decorate(handler: Callable[[SubmissionRequest, object], None]) -> Callable:
        def listener(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
            try:
                parsed = validate(values_of(view))
            except FieldProblems as invalid:
                ack(response_action="errors", errors={block: clip(message, 150) for block, message in invalid.problems.items()})
                return
            title = str((view.get("title") or {}).get("text") or "")
            if working:
                ack(response_action="update", view=notice_modal(title, [section(working)]))
            else:
                ack()
            channel, _, metadata = (view.get("private_metadata") or "").partition("\x1f")
            user = body["user"]
            request = SubmissionRequest(rt, user["id"], user.get("username", ""), channel, metadata, client,
                                        delivery_key(body) or "", view.get("id", "") if working else "", title)
            after_ack(run, request, parsed)

        def run(request: SubmissionRequest, parsed: object) -> None:
            guard(rt, role, what, request.user_id, request.user_name, request.reply, lambda: handler(request, parsed))

        return listener

    return decorate


def guarded_view_now(rt: Runtime, role: Role, what: str, validate: Callable[[dict[str, object]], object]) -> Callable:
    """Like guarded_view, for a modal whose work is a quick local write (the database, a short
    DNS look-up): the role check and `handler(request, validated)` run before the ack, so what
    it writes is there as soon as the modal closes, and the FieldProblems it raises show inline.
    What the handler returns (a callable, or None) runs after the ack: answers go to Slack
    from there, like every outside call."""

    def decorate(handler: Callable[[SubmissionRequest, object], Callable[[], None] | None]) -> Callable:
        def listener(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
            try:
                parsed = validate(values_of(view))
            except FieldProblems as invalid:
                ack(response_action="errors", errors={block: clip(message, 150) for block, message in invalid.problems.items()})
                return
            channel, _, metadata = (view.get("private_metadata") or "").partition("\x1f")
            user = body["user"]
            request = SubmissionRequest(rt, user["id"], user.get("username", ""), channel, metadata, client,
                                        delivery_key(body) or "")
            inline: list[FieldProblems] = []
            later: list[Callable[[], None]] = []
            replies: list[tuple[tuple, dict]] = []

            def work() -> None:
                try:
                    then = handler(request, parsed)
                except FieldProblems as problems:
                    inline.append(problems)
                    return
                if then is not None:
                    later.append(then)

            guard(rt, role, what, request.user_id, request.user_name,
                  lambda *args, **kwargs: replies.append((args, kwargs)), work)
            if inline:
                ack(response_action="errors",
                    errors={block: clip(message, 150) for block, message in inline[0].problems.items()})
                return
            ack()
            after_ack(finish, request, replies, later)

        def finish(request: SubmissionRequest, replies: list[tuple[tuple, dict]],
                   later: list[Callable[[], None]]) -> None:
            for args, kwargs in replies:
                request.reply(*args, **kwargs)
            for then in later:  # the role was checked before the ack
                guard(rt, None, what, request.user_id, request.user_name, request.reply, then)

        return listener

    return decorate
