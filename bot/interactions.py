"""Buttons and menus: the same ack-first, role-checked, failure-in-words wrapper that the
router gives slash commands, for `app.action` listeners."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.work import after_ack
from purelyops import audit
from purelyops.access import Role, RoleUnknown, has_role, refusal
from purelyops.failures import describe_failure
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
            body = request.body
            try:
                if not has_role(rt, request.user_id, role):
                    audit.record_now(rt, actor_id=request.user_id, actor_name=body["user"].get("username", ""),
                                     action="refused", target=what, result="refused", detail=f"needs {role.value}")
                    request.reply(f":no_entry: {refusal(role, what)}")
                    return
                handler(request)
            except RoleUnknown as error:
                request.reply(f":warning: {error}")
            except Exception as error:  # noqa: BLE001 - every failure is reported in words
                log.warning("action %s failed", what, exc_info=error)
                request.reply(f":warning: {describe_failure(error)}")

        return listener

    return decorate
