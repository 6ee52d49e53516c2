"""Buttons and menus: the same ack-first, role-checked, failure-in-words wrapper that the
router gives slash commands, for `app.action` listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import Ack, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.delivery import delivery_key
from bot.mrkdwn import clip
from bot.work import after_ack
from purelyops import audit
from purelyops.access import Role, RoleUnknown, has_role, refusal
from purelyops.failures import describe_failure
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


def checked(rt: Runtime, role: Role, what: str, user_id: str, user_name: str, reply: Callable[[str], None],
            work: Callable[[], None]) -> None:
    """Run `work` for a user who has `role`; otherwise refuse (and audit the refusal). Any
    failure becomes a message in words, never a traceback."""
    try:
        if not has_role(rt, user_id, role):
            audit.record_now(rt, actor_id=user_id, actor_name=user_name, action="refused", target=what,
                             result="refused", detail=f"needs {role.value}")
            reply(f":no_entry: {refusal(role, what)}")
            return
        work()
    except RoleUnknown as error:
        reply(f":warning: {error}")
    except Exception as error:  # noqa: BLE001 - every failure is reported in words
        log.warning("%s failed", what, exc_info=error)
        reply(f":warning: {describe_failure(error)}")


def guarded(rt: Runtime, role: Role, what: str) -> Callable[[Callable[[ActionRequest], None]], Callable]:
    """Wrap a click handler: ack at once, refuse (and audit) without `role`, report failures in words."""

    def decorate(handler: Callable[[ActionRequest], None]) -> Callable:
        def listener(ack: Ack, body: dict, respond: Respond, client: WebClient) -> None:
            ack()
            after_ack(run, ActionRequest(rt, body, respond, client))

        def run(request: ActionRequest) -> None:
            checked(rt, role, what, request.user_id, request.body["user"].get("username", ""), request.reply,
                    lambda: handler(request))

        return listener

    return decorate


FieldErrors = FieldProblems  # what a modal's validator raises: {block_id: message}, shown inline


@dataclass
class SubmissionRequest:
    """A submitted modal, after its ack: answers go to the channel it was opened from."""

    rt: Runtime
    user_id: str
    user_name: str
    channel_id: str
    metadata: str  # the modal's private_metadata after the channel id
    client: WebClient
    idempotency: str  # the same for every delivery of this very submission (view, hash, values)

    def reply(self, text: str, blocks: list[dict] | None = None) -> None:
        """An ephemeral message; a direct message when the bot is not in that channel."""
        try:
            self.client.chat_postEphemeral(channel=self.channel_id, user=self.user_id, text=text, blocks=blocks)
        except SlackApiError:
            self.client.chat_postMessage(channel=self.user_id, text=text, blocks=blocks)


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


def guarded_view(rt: Runtime, role: Role, what: str, validate: Callable[[dict[str, object]], object]) -> Callable:
    """Wrap a modal's submission: `validate(values)` runs before the ack and raises
    FieldErrors for inline errors; then the ack, then (in the work pool) the role check and
    `handler(request, validated)`, with failures reported in words."""

    def decorate(handler: Callable[[SubmissionRequest, object], None]) -> Callable:
        def listener(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
            try:
                parsed = validate(values_of(view))
            except FieldProblems as invalid:
                ack(response_action="errors", errors={block: clip(message, 150) for block, message in invalid.problems.items()})
                return
            ack()
            channel, _, metadata = (view.get("private_metadata") or "").partition("\x1f")
            user = body["user"]
            request = SubmissionRequest(rt, user["id"], user.get("username", ""), channel, metadata, client,
                                        delivery_key(body) or "")
            after_ack(run, request, parsed)

        def run(request: SubmissionRequest, parsed: object) -> None:
            checked(rt, role, what, request.user_id, request.user_name, request.reply, lambda: handler(request, parsed))

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
            replies: list[str] = []

            def work() -> None:
                try:
                    then = handler(request, parsed)
                except FieldProblems as problems:
                    inline.append(problems)
                    return
                if then is not None:
                    later.append(then)

            checked(rt, role, what, request.user_id, request.user_name, replies.append, work)
            if inline:
                ack(response_action="errors",
                    errors={block: clip(message, 150) for block, message in inline[0].problems.items()})
                return
            ack()
            after_ack(finish, request, replies, later)

        def finish(request: SubmissionRequest, replies: list[str], later: list[Callable[[], None]]) -> None:
            for text in replies:
                request.reply(text)
            for then in later:
                try:
                    then()
                except Exception as error:  # noqa: BLE001 - every failure is reported in words
                    log.warning("%s failed after the ack", what, exc_info=error)
                    request.reply(f":warning: {describe_failure(error)}")

        return listener

    return decorate
